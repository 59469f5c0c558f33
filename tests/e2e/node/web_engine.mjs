// Runs the engine's browser build (target/web/pkg, the same .js and .wasm the console serves)
// under Node.js, for the test that compares it with the `tollgate` CLI.
//   node web_engine.mjs PKG_DIR scan CONFIG_FILE < corpus.jsonl   -> one scan report per line
//   node web_engine.mjs PKG_DIR request CONFIG_FILE PATH < body    -> the request report
//   node web_engine.mjs PKG_DIR texts CONFIG_FILE PATH < body      -> the strings it scans
//   node web_engine.mjs PKG_DIR check CONFIG_FILE                  -> the config report
// CONFIG_FILE "-" means the defaults.
import { readFileSync } from "node:fs";
import { loadWebEngine } from "./load_web_engine.mjs";

const [pkg, mode, configFile, path] = process.argv.slice(2);
const { web } = await loadWebEngine(pkg);
const config = configFile && configFile !== "-" ? readFileSync(configFile, "utf8") : "";
const input = mode === "check" ? "" : readFileSync(0, "utf8");

if (mode === "scan") {
  const out = [];
  for (const line of input.split("\n")) {
    if (!line.trim()) continue;
    out.push(web.scan(JSON.parse(line).text, config));
  }
  process.stdout.write(out.join("\n") + "\n");
} else if (mode === "request") {
  process.stdout.write(web.analyze_request(path, input, config) + "\n");
} else if (mode === "texts") {
  process.stdout.write(web.request_texts(path, input, config) + "\n");
} else if (mode === "check") {
  process.stdout.write(web.check_config(config) + "\n");
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}
