// Every scenario of the harness, in the order the suites run them (quick ones first).
import type { Scenario } from '../scenario';
import autopilotFlappingZone from './autopilot-flapping-zone';
import autopilotLeaderKilled from './autopilot-leader-killed';
import autopilotOneSidedPartition from './autopilot-one-sided-partition';
import autopilotZoneDies from './autopilot-zone-dies';
import cascadingCityDown from './cascading-city-down';
import corruptedTable from './corrupted-table';
import elasticPeak from './elastic-peak';
import etcdLeaderKill from './etcd-leader-kill';
import gatewayCutOff from './gateway-cut-off';
import gatewayKillRestart from './gateway-kill-restart';
import hostileClients from './hostile-clients';
import instanceChurn from './instance-churn';
import operatorKilledMidMove from './operator-killed-mid-move';
import plannedCellMove from './planned-cell-move';
import presenceRelayKilled from './presence-relay-killed';
import regionDown from './region-down';
import slowClientsDuringDrain from './slow-clients-during-drain';
import twoOperators from './two-operators';
import zoneDownSameCity from './zone-down-same-city';
import zoneDrainFailback from './zone-drain-failback';
import zoneFlap from './zone-flap';
import zoneNetwork from './zone-network';
import zoneServerFaults from './zone-server-faults';
import websocketClientsAcrossMoves from './websocket-clients-across-moves';

export const SCENARIOS: readonly Scenario[] = [
  zoneDownSameCity,
  plannedCellMove,
  operatorKilledMidMove,
  etcdLeaderKill,
  gatewayCutOff,
  corruptedTable,
  websocketClientsAcrossMoves,
  twoOperators,
  zoneDrainFailback,
  gatewayKillRestart,
  zoneServerFaults,
  zoneNetwork,
  zoneFlap,
  regionDown,
  cascadingCityDown,
  hostileClients,
  slowClientsDuringDrain,
  autopilotZoneDies,
  autopilotLeaderKilled,
  autopilotOneSidedPartition,
  autopilotFlappingZone,
  elasticPeak,
  instanceChurn,
  presenceRelayKilled,
];
