// The relay's event sink (JSON log lines in the CLI, nothing in tests).
export type RelayLog = (event: string, fields?: Record<string, unknown>) => void;
