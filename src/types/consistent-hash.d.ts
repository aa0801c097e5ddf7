// Minimal typings for the parts of `consistent-hash` (1.2.x) that cellgate uses.
declare module 'consistent-hash' {
  interface ConsistentHashOptions {
    range?: number;
    weight?: number;
    controlPoints?: number;
    distribution?: 'random' | 'uniform';
  }
  class ConsistentHash<T = string> {
    constructor(options?: ConsistentHashOptions);
    readonly nodeCount: number;
    readonly keyCount: number;
    add(node: T, weight?: number, points?: number[]): this;
    remove(node: T): this;
    get(name: string): T | null;
    getNodes(): T[];
    getPoints(node: T): number[] | undefined;
  }
  export = ConsistentHash;
}
