// The in-memory store the router tests use passes the same contract as the real stores,
// so that what the gateway is tested against behaves like what it runs against.
import { registryContract } from './registry-contract';
import { storeContract } from './store-contract';
import { MemoryStore } from './helpers/memory-store';

storeContract('memory', async (t) => {
  const store = new MemoryStore();
  const opened = [store];
  t.teardown(() => Promise.all(opened.map((s) => s.close())).then(() => undefined));
  return {
    store,
    reopen: () => {
      const other = store.reopen();
      opened.push(other);
      return other;
    },
    writeRawTable: async (doc) => store.writeRaw(doc),
    writeRawPresence: async (id, raw) => store.presence.putRaw(id, raw),
  };
});

registryContract('memory', async (t) => {
  const store = new MemoryStore();
  const opened = [store];
  t.teardown(() => Promise.all(opened.map((s) => s.close())).then(() => undefined));
  return {
    store,
    reopen: () => {
      const other = store.reopen();
      opened.push(other);
      return other;
    },
    writeRawEndpoint: async (key, text) => store.registry.putRaw(key, text),
    writeRawEndpoints: async (records) => {
      for (const [key, text] of records) store.registry.putRaw(key, text);
    },
    leaseOf: async (key) => store.registry.leaseOf(key),
  };
});
