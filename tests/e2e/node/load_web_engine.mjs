// Loads the engine's browser build (a wasm-bindgen `--target web` package: the .js and .wasm the
// console serves) into Node.js. The glue is an ES module named .js, so a copy named .mjs is
// imported; the .wasm is instantiated from its bytes.
import { copyFileSync, mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pathToFileURL } from "node:url";

/** The package's exports, ready to call, and the .wasm's bytes. */
export async function loadWebEngine(pkg) {
  const dir = mkdtempSync(join(tmpdir(), "tollgate-web-"));
  copyFileSync(join(pkg, "tollgate_web.js"), join(dir, "tollgate_web.mjs"));
  const web = await import(pathToFileURL(join(dir, "tollgate_web.mjs")).href);
  const wasm = readFileSync(join(pkg, "tollgate_web_bg.wasm"));
  web.initSync({ module: wasm });
  return { web, wasm };
}
