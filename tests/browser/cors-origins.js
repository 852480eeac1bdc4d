'use strict'
// Headless Chromium on pages of other origins than the API (tests/transports/test_cors.py): each scenario
// opens its page, runs window.corsCheck (cors-page.js) against its API, and records the answers.
// The Python test decides what must have passed or been blocked.
//
// Environment:
//   SCENARIOS  JSON list of {name, page, api, credentials}
//   CHROMIUM   browser executable (default /usr/bin/chromium)
//   OUT_DIR    where result.json goes (default: a new temp dir)
// Exit code 0 when every scenario ran; result.json has {ok, results: {name: answers}, error}.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { chromium } = require('playwright-core')

const SCENARIOS = JSON.parse(process.env.SCENARIOS || '[]')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const OUT_DIR = process.env.OUT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'kdk-cors-'))
const STEP_TIMEOUT_MS = 10000
const RUN_TIMEOUT_MS = 45000
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

const result = { ok: false, results: {}, console: {} }

function write () {
  fs.writeFileSync(path.join(OUT_DIR, 'result.json'), JSON.stringify(result, null, 2))
}

async function runScenario (browser, scenario) {
  const context = await browser.newContext()
  try {
    const page = await context.newPage()
    const lines = (result.console[scenario.name] = [])
    page.on('console', (msg) => lines.push(`${msg.type()}: ${msg.text()}`))
    page.on('pageerror', (error) => lines.push(`uncaught: ${error.message}`))
    await page.goto(scenario.page, { waitUntil: 'load', timeout: STEP_TIMEOUT_MS })
    await page.waitForFunction(() => typeof window.corsCheck === 'function', null, { timeout: STEP_TIMEOUT_MS })
    result.results[scenario.name] = await page.evaluate(
      ({ api, credentials }) => window.corsCheck(api, { credentials }),
      { api: scenario.api, credentials: Boolean(scenario.credentials) }
    )
  } finally {
    await context.close()
  }
}

async function main () {
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: STEP_TIMEOUT_MS * 2 })
  const cap = setTimeout(() => {
    result.error = `run did not finish within ${RUN_TIMEOUT_MS} ms`
    write()
    process.exit(1)
  }, RUN_TIMEOUT_MS)
  try {
    for (const scenario of SCENARIOS) await runScenario(browser, scenario)
    result.ok = true
  } catch (error) {
    result.error = error.stack || String(error)
  } finally {
    clearTimeout(cap)
  }
  write()
  await browser.close().catch(() => {})
  process.exit(result.ok ? 0 : 1)
}

main().catch((error) => {
  result.error = error.stack || String(error)
  write()
  process.exit(1)
})
