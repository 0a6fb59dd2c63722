// The load generator of bench/perf: one Node process holding every client
// (socket.io-client 4.x, WebSocket only, one connection per client carrying
// both `/control` and `/chat`). One process means one clock, so latency is
// receive time minus the send time written into the message text.
//
//   node generator.js <config.json>
//
// config: {clients: [{url, token, room, pos}], roomSize, createChats: bool}
// `room` is a chat id, or, with createChats, a room number: the member at
// pos 0 then starts the chat over `/control` `start` and the others use its id.
//
// It reads commands from stdin and answers each with one JSON line on stdout:
//   {"cmd": "connect", "count": N, "concurrency": C, "join": bool}
//   {"cmd": "step", "rate": deliveries/s, "duration": s, "rooms": R, "drain": s}
//   {"cmd": "close"}
// Every answer carries the generator's own CPU use over the command, so the
// runner can tell when the generator, not the server, was the limit.
"use strict";

const fs = require("node:fs");
const readline = require("node:readline");
const { monitorEventLoopDelay } = require("node:perf_hooks");
const { Manager } = require("socket.io-client");

const CONNECT_TIMEOUT_MS = 30000;
const ACK_TIMEOUT_MS = 30000;
const TICK_MS = 2;

const config = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const clients = config.clients.map((spec, index) => ({ ...spec, index }));
const roomSize = config.roomSize;

// ------------------------------------------------------------ measuring

function cpuMeter() {
  const startCpu = process.cpuUsage();
  const startWall = performance.now();
  return () => {
    const used = process.cpuUsage(startCpu);
    const wall = performance.now() - startWall;
    return { cpu_pct: (100 * (used.user + used.system)) / 1000 / Math.max(wall, 1), wall_s: wall / 1000 };
  };
}

function percentile(sorted, p) {
  if (sorted.length === 0) return null;
  const at = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, at)];
}

function popcount(x) {
  let n = 0;
  while (x) {
    x &= x - 1;
    n += 1;
  }
  return n;
}

// ------------------------------------------------------------ state of a step

/** What the current step has sent and received; receipts outside a step count as late. */
let step = null;
let lateDeliveries = 0;
let disconnects = 0;

function newStep() {
  return {
    sent: 0,
    acked: 0,
    ackErrors: {},
    messages: new Map(), // key -> bitmask of room positions that received it
    senderPos: new Map(), // key -> sender's room position
    delivered: 0,
    deliveredByUrl: {}, // receiving client's server -> deliveries made there
    lastDelivery: 0,
    duplicates: 0,
    foreign: 0,
    latencies: [],
  };
}

function messageKey(clientIndex, n) {
  return clientIndex * 4194304 + n; // n < 2^22 per client
}

function onNotify(client, message) {
  const parts = String(message && message.text).split("|");
  if (parts.length !== 4 || parts[0] !== "b") return;
  const received = performance.now();
  if (step === null) {
    lateDeliveries += 1;
    return;
  }
  const key = messageKey(Number(parts[1]), Number(parts[2]));
  const mask = step.messages.get(key);
  if (mask === undefined) {
    step.foreign += 1; // sent in an earlier step
    return;
  }
  const bit = 1 << client.pos;
  if (mask & bit) {
    step.duplicates += 1;
    return;
  }
  step.messages.set(key, mask | bit);
  step.delivered += 1;
  step.deliveredByUrl[client.url] = (step.deliveredByUrl[client.url] || 0) + 1;
  step.lastDelivery = received;
  step.latencies.push(received - Number(parts[3]));
}

// ------------------------------------------------------------ connecting

function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no answer in ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

function connectNamespace(manager, namespace, token) {
  const socket = manager.socket(namespace, { auth: { token } });
  const connected = new Promise((resolve, reject) => {
    socket.once("connect", resolve);
    socket.once("connect_error", (err) => reject(new Error(`${namespace}: ${err.message}`)));
  });
  return { socket, connected };
}

function emitAck(socket, event, payload) {
  return withTimeout(new Promise((resolve) => socket.emit(event, payload, resolve)), ACK_TIMEOUT_MS, event);
}

async function connectClient(client) {
  const manager = new Manager(client.url, {
    transports: ["websocket"],
    reconnection: false,
    timeout: CONNECT_TIMEOUT_MS,
  });
  client.manager = manager;
  const control = connectNamespace(manager, "/control", client.token);
  const chat = connectNamespace(manager, "/chat", client.token);
  client.control = control.socket;
  client.chat = chat.socket;
  await withTimeout(Promise.all([control.connected, chat.connected]), CONNECT_TIMEOUT_MS, "connect");
  client.chat.on("notify", (message) => onNotify(client, message));
  client.chat.on("disconnect", () => {
    disconnects += 1;
  });
}

/** With createChats, the member at pos 0 of each room starts its chat over `/control`. */
async function createChats(batch) {
  const rooms = batch.filter((c) => c.pos === 0 && typeof c.room === "number");
  await Promise.all(
    rooms.map(async (first) => {
      const members = clients.filter((c) => c.room === first.room && c !== first).map((c) => c.token);
      const reply = await emitAck(first.control, "start", { members });
      if (!reply.ok) throw new Error(`start: ${JSON.stringify(reply)}`);
      for (const c of clients) if (c.room === first.room && c !== first) c.room = reply.chat.id;
      first.room = reply.chat.id;
    }),
  );
}

async function joinRoom(client) {
  const reply = await emitAck(client.chat, "join", { id: client.room });
  if (!reply.ok) throw new Error(`join: ${JSON.stringify(reply.error || reply)}`);
  client.joined = true;
}

/** Run `work` over `items` with at most `concurrency` at a time; failures are counted. */
async function pool(items, concurrency, work) {
  let next = 0;
  const errors = [];
  async function lane() {
    while (next < items.length) {
      const item = items[next++];
      try {
        await work(item);
      } catch (err) {
        errors.push(String(err.message || err));
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, lane));
  return errors;
}

async function connect({ count, concurrency = 100, join = false }) {
  const meter = cpuMeter();
  const batch = clients.filter((c) => !c.manager).slice(0, count);
  const started = performance.now();
  const errors = await pool(batch, concurrency, connectClient);
  const seconds = (performance.now() - started) / 1000;
  let joinErrors = [];
  if (join && errors.length === 0) {
    if (config.createChats) await createChats(batch);
    joinErrors = await pool(batch, concurrency, joinRoom);
  }
  const ok = batch.length - errors.length;
  return {
    event: "connected",
    requested: batch.length,
    connected: ok,
    connect_seconds: seconds,
    connects_per_s: ok / Math.max(seconds, 1e-9),
    errors: errors.length + joinErrors.length,
    first_error: errors[0] || joinErrors[0] || null,
    ...meter(),
  };
}

// ------------------------------------------------------------ sending

/** Senders of a step, interleaved across rooms so consecutive sends hit different rooms. */
function senders(rooms) {
  const byRoom = new Map();
  for (const c of clients) {
    if (!c.joined) continue;
    if (!byRoom.has(c.room)) byRoom.set(c.room, []);
    byRoom.get(c.room).push(c);
  }
  const used = [...byRoom.values()].filter((members) => members.length === roomSize).slice(0, rooms);
  const order = [];
  for (let pos = 0; pos < roomSize; pos++) for (const members of used) order.push(members[pos]);
  return { order, rooms: used.length };
}

function sendOne(client, n) {
  const key = messageKey(client.index, n);
  step.messages.set(key, 0);
  step.senderPos.set(key, client.pos);
  step.sent += 1;
  const current = step;
  const text = `b|${client.index}|${n}|${performance.now().toFixed(3)}`;
  client.chat.emit("notify", { id: client.room, kind: "message", text }, (reply) => {
    if (reply && reply.ok) current.acked += 1;
    else {
      const code = (reply && reply.error && reply.error.code) || "unknown";
      current.ackErrors[code] = (current.ackErrors[code] || 0) + 1;
    }
  });
}

/** Send at `msgsPerSecond` in total, round robin over `order`, for `duration` s. */
function sendSchedule(order, msgsPerSecond, duration) {
  return new Promise((resolve) => {
    const start = performance.now();
    let maxBacklog = 0;
    let next = 0;
    const planned = Math.floor(msgsPerSecond * duration);
    function tick() {
      const elapsed = (performance.now() - start) / 1000;
      const due = Math.min(planned, Math.floor(elapsed * msgsPerSecond)) - step.sent;
      maxBacklog = Math.max(maxBacklog, due / msgsPerSecond);
      for (let i = 0; i < due; i++) {
        const client = order[next];
        next = (next + 1) % order.length;
        client.sentCount = (client.sentCount || 0) + 1; // never reused: late receipts stay foreign
        sendOne(client, client.sentCount);
      }
      if (step.sent >= planned || elapsed > duration * 1.5 + 1) {
        resolve({ planned, send_seconds: elapsed, max_backlog_ms: maxBacklog * 1000 });
      } else setTimeout(tick, TICK_MS);
    }
    tick();
  });
}

function expectedMask(senderPos) {
  return ((1 << roomSize) - 1) & ~(1 << senderPos);
}

function outstanding() {
  const acks = step.sent - step.acked - Object.values(step.ackErrors).reduce((a, b) => a + b, 0);
  return { acks, deliveries: step.sent * (roomSize - 1) - step.delivered };
}

/** Wait until every ack and delivery is in, or nothing moved for 2 s, or `drain` s passed. */
async function drain(limitSeconds) {
  const deadline = performance.now() + limitSeconds * 1000;
  let last = -1;
  let still = performance.now();
  while (performance.now() < deadline) {
    const left = outstanding();
    if (left.acks <= 0 && left.deliveries <= 0) return;
    const progress = step.delivered + step.acked;
    if (progress !== last) {
      last = progress;
      still = performance.now();
    } else if (performance.now() - still > 2000) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Deliveries/s sustained: over the send window, or until the last delivery if the server lagged. */
function deliveryRate(started, duration) {
  const span = Math.max(duration, (step.lastDelivery - started) / 1000);
  return step.delivered / span;
}

function summary(sendInfo, targetRate, duration, usage, started) {
  let lost = 0;
  for (const [key, mask] of step.messages) {
    const expected = expectedMask(step.senderPos.get(key));
    lost += popcount(expected) - popcount(mask & expected);
  }
  const lat = Float64Array.from(step.latencies).sort();
  const expected = step.sent * (roomSize - 1);
  const achieved = step.sent / Math.max(sendInfo.send_seconds, 1e-9);
  const behind = step.sent < 0.99 * sendInfo.planned || achieved < 0.98 * (sendInfo.planned / duration);
  return {
    event: "step",
    target_deliveries_per_s: targetRate,
    sent: step.sent,
    planned: sendInfo.planned,
    acked_ok: step.acked,
    ack_errors: step.ackErrors,
    expected,
    delivered: step.delivered,
    delivered_by_url: step.deliveredByUrl,
    delivered_ratio: expected ? step.delivered / expected : 0,
    delivered_per_s: deliveryRate(started, duration),
    lost,
    duplicates: step.duplicates,
    foreign: step.foreign,
    late_from_earlier: lateDeliveries,
    disconnects,
    p50_ms: percentile(lat, 50),
    p95_ms: percentile(lat, 95),
    p99_ms: percentile(lat, 99),
    max_ms: lat.length ? lat[lat.length - 1] : null,
    send_seconds: sendInfo.send_seconds,
    max_backlog_ms: sendInfo.max_backlog_ms,
    behind_schedule: behind,
    generator_cpu_pct: usage.cpu_pct,
  };
}

async function runStep({ rate, duration, rooms, drain: drainLimit = 10 }) {
  const { order, rooms: used } = senders(rooms);
  if (order.length === 0) return { event: "error", message: "no joined rooms" };
  const msgsPerSecond = rate / (roomSize - 1);
  const perClient = msgsPerSecond / order.length;
  step = newStep();
  lateDeliveries = 0;
  const meter = cpuMeter();
  const loop = monitorEventLoopDelay({ resolution: 5 });
  loop.enable();
  const started = performance.now();
  const sendInfo = await sendSchedule(order, msgsPerSecond, duration);
  const usage = meter(); // over the send window: the generator's load at that rate
  await drain(drainLimit);
  loop.disable();
  const result = summary(sendInfo, rate, duration, usage, started);
  result.loop_delay_p99_ms = loop.percentile(99) / 1e6;
  step = null;
  return { ...result, rooms: used, clients: order.length, per_client_msgs_per_s: perClient };
}

// ------------------------------------------------------------ commands

function closeAll() {
  for (const c of clients) if (c.manager) c.manager.engine && c.manager.engine.close();
}

async function handle(command) {
  if (command.cmd === "connect") return connect(command);
  if (command.cmd === "step") return runStep(command);
  if (command.cmd === "close") {
    closeAll();
    return { event: "closed" };
  }
  return { event: "error", message: `unknown command ${command.cmd}` };
}

function main() {
  const lines = readline.createInterface({ input: process.stdin });
  let queue = Promise.resolve();
  lines.on("line", (line) => {
    queue = queue.then(async () => {
      let answer;
      try {
        answer = await handle(JSON.parse(line));
      } catch (err) {
        answer = { event: "error", message: String(err.stack || err) };
      }
      process.stdout.write(`${JSON.stringify(answer)}\n`);
      if (answer.event === "closed") setTimeout(() => process.exit(0), 200);
    });
  });
  lines.on("close", () => process.exit(0)); // the runner went away
  process.stdout.write(`${JSON.stringify({ event: "ready", clients: clients.length })}\n`);
}

main();
