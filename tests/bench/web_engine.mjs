// The engine's browser build (target/web/pkg, as the console serves it) under Node.js: how long
// loading, compiling the default rules and scanning take, and how big the files are.
//   make web && node tests/bench/web_engine.mjs [target/web/pkg] [eval/corpus/benign.jsonl]
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { loadWebEngine } from "../e2e/node/load_web_engine.mjs";

const pkg = process.argv[2] || "target/web/pkg";
const corpus = process.argv[3] || "eval/corpus/benign.jsonl";

const t0 = performance.now();
const { web, wasm } = await loadWebEngine(pkg);
const t1 = performance.now();
web.check_config("");
const t2 = performance.now();
const texts = readFileSync(corpus, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l).text);
const bytes = texts.reduce((a, t) => a + Buffer.byteLength(t), 0);
const t3 = performance.now();
for (const t of texts) web.scan(t, "");
const t4 = performance.now();
const fmt = (ms) => ms.toFixed(1) + " ms";
console.log(`wasm ${(wasm.length / 1e6).toFixed(2)} MB (gzip -9: ${(gzipSync(wasm, { level: 9 }).length / 1e6).toFixed(2)} MB), glue ${(statSync(join(pkg, "tollgate_web.js")).size / 1e3).toFixed(1)} kB`);
console.log(`load + instantiate ${fmt(t1 - t0)}; compile the default rules ${fmt(t2 - t1)}`);
console.log(`scan ${texts.length} texts (${(bytes / 1e6).toFixed(2)} MB) of ${corpus}: ${fmt(t4 - t3)}, ${((t4 - t3) / texts.length).toFixed(3)} ms per text, ${(bytes / 1e6 / ((t4 - t3) / 1e3)).toFixed(1)} MB/s`);
