// The autopilot's command lines: bad input is refused with exit 2 and a clear message
// before anything starts (the running behaviour is in e2e-autopilot.test.ts).
import test from 'ava';
import { CELLGATE, cellctl, runCli } from './helpers/cli';

test('cellgate autopilot refuses a file store, bad numbers and stray arguments (exit 2)', async (t) => {
  const cases: [string[], RegExp][] = [
    [['--store', 'file:/tmp/none.json'], /needs etcd .* file store serves one host only/],
    [['--store', 'etcd:127.0.0.1:1', '--max-down-share', '1.5'], /--max-down-share must be a number in \[0, 1\], got "1.5"/],
    [['--store', 'etcd:127.0.0.1:1', '--down-after', 'soon'], /--down-after must be a number/],
    [['--store', 'etcd:127.0.0.1:1', 'extra'], /unexpected argument extra/],
    [[], /no store/],
  ];
  for (const [args, message] of cases) {
    const r = await runCli(CELLGATE, ['autopilot', ...args], { env: { CELLGATE_STORE: '' } });
    t.is(r.code, 2, args.join(' '));
    t.regex(r.stderr, message, args.join(' '));
  }
});

test('cellctl autopilot: pause needs --reason; a file store is refused with the reason why', async (t) => {
  const noReason = await cellctl(['autopilot', 'pause', '--etcd', '127.0.0.1:1']);
  t.is(noReason.code, 2);
  t.regex(noReason.stderr, /needs --reason/);
  const file = await cellctl(['autopilot', 'status', '--file', '/tmp/none.json']);
  t.is(file.code, 2);
  t.regex(file.stderr, /needs etcd/);
});
