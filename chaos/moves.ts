// Facts of planned moves the scenarios are judged against.

/** cellctl's default freeze window (`--freeze-ms`). */
export const FREEZE_MS = 8_000;
/** The gateway's default grace for in-flight requests of a freezing cell (`freeze.inflightGraceMs`). */
export const INFLIGHT_GRACE_MS = 2_000;
