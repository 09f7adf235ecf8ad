/**
 * The text of docs/benchmarks.md below the tables: how each figure is taken, and why a
 * target that can be missed is (WHY, by row id or section, shown beside a missed target).
 * The findings behind them are in the performance note (docs/performance.md).
 */

export const WHY: Readonly<Record<string, string>> = {
  throughput:
    "CPU per call through three Node.js processes: about 20 us a call on a quiet host (the hub about 10, the caller 5, the echo 4.5), where the raw echo's two processes parse nothing and spend about 5-7 us a round trip; batched frames (several JSON frames a WebSocket message, agreed in hello) cut the hub's CPU per call to 0.56-0.80x and the SDKs' to 0.61-0.85x; batches that leave at 16 frames let the three processes work at once instead of in turns (on a quiet host 0.41x / 0.35x the raw echo against 0.18x / 0.28x); a batch parsed with one JSON.parse, in the hub and the Node.js SDK (0.75x the parse of a frame), took the hub to 0.80-0.95x of its CPU a call in host processes (about 9.5-10.5 us; the benchmark's row showed no gain in four alternating pairs), and the metrics, audit windows and timeouts kept without a key or a timer a call took it to about 7.8-9.1 us (0.74-0.95x in eleven host-process pairs of twelve; the benchmark's row 0.28-0.68x against 0.31-0.46x before in six alternating pairs, a gain only in the two run under the measuring lock): still above the 7 us or so that 0.5x of a quiet host's raw echo needs; what is left is the JSON.parse of each frame in all three processes and the allocation of each call (docs/performance.md#the-seventh-pass-2026-12-06-no-key-and-no-timer-a-call). Since 2026-12-06 the row is taken in windows alternating with the raw echo's, with the plugins running (a raw echo timed once read 151k-218k/s in four full runs): the ratio of the medians was 0.33-0.77x in six runs of three window pairs and 0.45x in one of ten at load 27 (median 0.51x, met in four of seven); in the hub's windows its process was idle 22% of the time, in writev 26%, in its JSON.parse 14%, GC 6% (docs/performance.md#the-raw-echo-beside-the-hub-window-by-window-2026-12-06)",
  latency:
    "waiting for a CPU on this shared host, and the scavenges of the Node.js processes: a call from a plugin wakes three processes in turn (caller, hub, target) where a host call wakes one; the caller and a Node.js echo scavenge 6-8 and 4-5 times in 1,000 calls (0.2-0.5 ms each, longer when preempted), the hub once, so about 1.2% of node -> node calls meet a GC, right at the p99; the pairs are timed in turns after a warm-up of each, none first (the pair timed first was the slowest in every run that moved it; docs/performance.md#the-third-pass-2026-12-06-the-tail-and-the-answers-copy)",
  'start.thoughts':
    "the host's load during the run: the container now starts with the start-up CPU boost (one core until its hello, then its 25%; docs/security.md#start-up-cpu-boost), which took away the throttled periods of its quota (1-2 a start before, none after) and its quarter weight under contention; the rest is the wait for a CPU on a shared two-core host, which echo-node, at 100% and never boosted, shows too (docs/performance.md#start-up-cpu-boost)",
  'start.analyzer': "the host's load during the run: analyzer starts with the start-up CPU boost as thoughts does (docs/performance.md#start-up-cpu-boost)",
  'start.echo-node': 'the load of this shared machine during the run: the same row was 0.95x (257 vs 269 ms) in a quieter run of the same code (docs/performance.md#nodejs-plugins)',
  memory: 'see docs/performance.md#nodejs-plugins',
  standby:
    "a crash switches to the standby when the kernel says the container's processes are gone (its cgroup's cgroup.events, through inotify), before the engine reports the exit (46-77 ms after the SIGKILL on this host); a miss is the host's load between the signal and the kernel's notification (the processes' own exit), not the engine. The crash row is timed from the SIGKILL sent to the container's process (docs/performance.md#warm-standby)",
  'run.command':
    "the command's CPU, which waits its turn on a loaded host: Node.js's own start (node -e 0: about 65 ms of CPU, the docker CLI about 20 for its whole run), its code (from run.cjs and its V8 code cache) and the checks docker run does not make (manifest, signature, policy, the image's inputs hash, the staging mount); about 140-155 ms of CPU a run, 170-215 before this session's cuts (https/tls, semver, protobuf and tar-fs no longer loaded, the inputs hash and the validator's compiled code kept between runs, the kernel log read only for a seccomp kill, /proc/self/mountinfo read only for a killed run's leftovers), 300 before its own bundle and code cache (docs/performance.md#the-cli)",
  cli: "Node.js's own start on a loaded machine (the node -e 0 beside it)",
  'scale.up':
    "`up`: both cores are busy from the first start to the last ready (about 410 ms of CPU a plugin: runc, the shims, the kernel's container setup, the plugins' own start; the controller 30-37 ms before, most of it forking mount(8), now about 17-23 ms: staging mounts through the lm-mount helper, the runtime images checked once per 5 s, the cgroup mounts kept, state.json saves coalesced); the start-up boost, whose end was one engine update per plugin, is no longer used while the starts fill the CPUs (off / on alternating: 0.90x, 0.93x) (docs/performance.md#where-the-time-of-an-up-goes)",
  'scale.idle':
    "idle CPU at 200 plugins, now with the controller's helper processes counted (cgwatch, lm-mount: 0.00-0.09%): the monitor's slow /proc reads (open files, /tmp) are paced to at most 40 plugins a second host-wide (each every 5 s at 200, 1.5 s up to 60; the kernel enforces both limits at once, docs/monitoring.md#slow-reads-at-scale) and skip docker-init: in one process, 10 s windows alternating paced / unpaced, medians 1.67 / 1.91% and 1.28 / 1.66% (0.90x, 0.77x); whole runs of the row alternating with the code before move as much as that (0.57x, 0.69x, 1.28x); what remains is mostly the health pings and their pongs (40 round trips a second), the timers and log polls, and wake-ups outside JavaScript, and every window falls as the host settles after the starts (docs/performance.md#scale)",
  'scale.spread':
    "spread p99, beside bare containers of the same images in the same run (python3 / node echoes on a bind-mounted Unix socket, the plugins' hardening, no SDK, no hub; the hub's windows with the 200 plugins alone, then the bare echoes' alone after the plugins' teardown, each after a warm-up of 200 rounds and a settled host): in the quiet runs of 2026-12-06 the bare echoes' p99 was 0.49-1.12 ms, so the host can meet the target and the product does not yet: its p99 3.4-4.1 ms, 3-8x the bare p99, its p50 3-4x. The difference is the calls' CPU in the plugins (a Python plugin 337-408 us a call against the bare Python echo's 67-88 us, a Node.js plugin 402-572 us against 215-278 us; after the SDKs' changes of that afternoon 227-234 us and 336-377 us, and the p99 1.76-2.02 ms in three full runs, the containerd shims' periodic collection falling in the hub's last two windows) and the controller's young-generation collections (1-4 of 2-6 ms a 2 s window); the vCPUs' stalls (about one of ~9 ms a second on this VM) fall on both sides. With a warm-up of 20 rounds, the hub's second window reached 31-122 ms in every run: the bench now warms up with 200. Earlier: the hub's heartbeat burst fixed; found, not ours: the shims' 30 s GC, kdamond's 1 s quota; tried, no gain: the controller's priority, V8's memory reducer off, shims at GOMAXPROCS=1, a larger young generation, scavenges on the main thread only (docs/performance.md#the-spread-calls-beside-bare-containers-2026-12-06)",
  'Resource monitor':
    "issue 16's targets; the detection tails follow the host's CPU: each row gives how idle the host was during its runs, and in the runs of 2026-12-06 03:36 / 03:49 the slowest ones fell where the host was 0-7% idle, this process's timer on time and no GC within them (test/bench/host-trace.ts); the section starts on a settled host (test/bench/settle.ts, bounded), but other work on the shared host can start meanwhile. CPU watching idle containers: cgwatch waits on the kernel log for a v1 container's first refused fork instead of polling every pids.events every 15 ms (0.28-0.30x of the poll in turns, docs/monitoring.md#refused-forks-on-cgroup-v1) (docs/monitoring.md#measured)",
  'Resource monitor.oom-kill-detection-from-the-kill':
    "the monitor's part of an OOM kill, from the kernel's kill (its kernel log record) to the callback: cgwatch is woken by the kernel's OOM notification, which comes before the kill (the allocating task writes its OOM report in between), and the controller reads the kill counter again every millisecond until it moves; a slow run here is the controller process waiting for a CPU (traced 2026-12-06: 9.6 and 11.7 ms with the host 41% idle). The slow runs of the row before (the driver's stamp to the callback, 29-64 ms) were the kernel's work before the kill, by the allocating task inside the plugin's limits: its reclaim and OOM report, off its CPU at every cond_resched on this kernel without preemption when the host is busy, and on an idle host the probe's 50% CPU quota (a run 49.2 ms to the kill came with 70 ms throttled) (docs/monitoring.md#the-oom-kill-timed-from-the-kill)",
};

export const NOTES: readonly string[] = [
  'How the figures are taken:',
  '',
  '- Every latency figure is taken after a warm-up of a few thousand calls: the first ones run',
  '  before the JIT compilers of the hub and the SDKs settle, and are up to twice as slow.',
  '  Plugin -> plugin latency is timed inside the calling plugin (its SDK, its socket, the hub,',
  '  the target and back), 3 s after the plugins started, each pair warmed up first, then the',
  '  pairs in turns of 250 calls, each turn starting with the next pair, so that none is timed',
  '  first (the first pair timed was the slowest in every run that moved it); host -> plugin',
  '  from the controller process. Plugins run with',
  '  maxCpuPercent 100 in the latency rows; the CPU quota of the example plugins adds scheduling',
  "  delay of its own. The throughput row runs with the hub's per-plugin rate limit raised",
  '  (default 20 000/s), to show what the hub itself carries; it is taken in 2 s windows',
  "  alternating with the raw echo's (raw echo, hub, raw echo, hub, ..., BENCH_ROUNDS of each,",
  '  at least 3), with the plugins running: the row is the median of each side and their',
  '  ratio, the range of the windows in its name (a raw echo timed once at another moment',
  "  drifted by up to 1.4x between runs). The latency rows' raw echo is timed before the",
  '  plugins start.',
  '- Load to ready is `start()` until the plugin said hello, images built, beside a bare create',
  "  and start of the same image (which does not wait for the runtime to boot). Each example runs",
  '  with its own CPU quota (shown), and starts with the start-up CPU boost of the default policy',
  '  (one core until its hello, lowered before `start()` returns); echo-node runs at 100%.',
  '- Restart to ready with a standby: `restart` by hand until it returns (the plugin serves on',
  "  its standby), and a crash: SIGKILL sent to the container's first process from the host (as",
  "  the kernel would; the engine's kill request only without the right to), timed from the",
  "  moment it is sent to the hub's `ready`; beside a stop and start of the same plugin without a",
  '  standby.',
  '- Host memory per idle plugin is what one more container of it costs: the anonymous memory of',
  '  its cgroup and the private memory of its containerd shim, after the latency rows. File pages',
  "  of the image (the runtime's binary, its libraries) are shared by every container of the",
  '  image and charged by the kernel to whichever container read them first; they are left out',
  '  for the plugin and its baseline alike.',
  '- One-shot runs and commands are timed as users run them: the installed command',
  '  (`bin/logomesh.js`, which `logomesh` on PATH is), including the start of Node.js; `run`',
  '  from its own bundle with its V8 code cache, which the first of the rounds writes.',
  '- The scale rows start the plugins of one folder under one controller (half Python, half',
  "  Node.js at 25% CPU each, and the Go and Rust examples), then measure the controller's own",
  '  CPU at idle, and host calls at 1,000 a second, open loop, spread across all of them. Each',
  "  of those two starts once the host is settled (at least 80% idle over 1 s, waited for at",
  "  most 30 / 20 s: the engine's and the kernel's work for the starts goes on after the last",
  '  ready); the output says how idle the host was and how long it waited. The spread calls',
  '  follow a warm-up of 200 rounds of one call to each plugin; their baseline is the same calls',
  '  to 200 bare containers of the same images (a python3 or node echo on a Unix socket, no SDK,',
  "  no hub), started after the plugins' teardown on a settled host, with the same warm-up.",
  '- The shared-memory rows run their own controller (a Python producer, a Go consumer; see',
  '  docs/shared-memory.md): each time is one whole transfer measured in the producer, checked',
  "  by a CRC-32 of every byte the consumer read; the hub's message limit is raised to 16 MiB for",
  '  the baseline, which sends the same bytes as base64.',
  '- The soak rows run a second controller with its default limits and one echo plugin. A hostile',
  '  host client in another process floods the hub for each row (refused calls; 10 KB frames',
  "  nested 5,000 deep; calls with 50 KB answers it never reads; 1 KB broadcasts) while the",
  "  controller's own host client makes sequential calls; the baseline is the same calls in the",
  '  seconds just before. RSS is the whole benchmark process (controller included).',
  '- Resource monitor: detection latency runs from CLOCK_MONOTONIC written by a driver in the',
  '  container just before the event (the allocation the OOM killer stops, the fork the pids',
  "  limit refuses, the allocation that crosses the threshold) to the monitor's violation callback",
  "  in this process (the same clock); the controller's routing to the audit trail, the log and",
  "  the hub event at the host follows in the same tick. The OOM kill's target row runs from the",
  "  kernel's kill instead: its kernel log record, read from /dev/kmsg, on CLOCK_MONOTONIC through",
  '  an offset measured in the same run (records written between two clock reads); the row',
  "  beside it gives the driver's stamp to the callback and, of it, the stamp to the kill. The",
  '  section waits for a settled host',
  '  (at least 80% idle over 1 s, bounded) and each row gives the host idle share during its runs.',
  '  The idle CPU row: cgwatch on the kernel log beside cgwatch polling every pids.events (the code',
  '  before), in turns over the same containers.',
  '',
];
