// gRPC sets the TLS server name to the endpoint's host even when it is an IP address, and
// Node then warns (DEP0123) on every connection to https://10.0.0.1:2379: noise an operator
// can do nothing about (an IP SAN certificate is correct). That one warning is dropped.
export function quietIpServernameWarning(): void {
  const emit = process.emitWarning.bind(process) as (...args: unknown[]) => void;
  process.emitWarning = ((warning: string | Error, ...rest: unknown[]) => {
    const code = typeof rest[0] === 'object' && rest[0] !== null ? (rest[0] as { code?: string }).code : rest[1];
    if (code === 'DEP0123' || (warning instanceof Error && (warning as Error & { code?: string }).code === 'DEP0123')) return;
    emit(warning, ...rest);
  }) as typeof process.emitWarning;
}
