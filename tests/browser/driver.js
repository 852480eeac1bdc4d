'use strict'
// What the Chromium drivers of this folder share: their settings from the environment, the
// step log, and the run harness (launch, a cap on the whole run, result.json, the exit code).
const fs = require('fs')
const os = require('os')
const path = require('path')
const { chromium } = require('playwright-core')

const RUN_TIMEOUT_MS = 45000
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

// SERVER_URL, CHROMIUM, OUT_DIR (a new temp dir named after `prefix` by default), STEP_TIMEOUT_MS.
function settings (prefix) {
  return {
    SERVER_URL: (process.env.SERVER_URL || 'http://127.0.0.1:8081').replace(/\/$/, ''),
    CHROMIUM: process.env.CHROMIUM || '/usr/bin/chromium',
    OUT_DIR: process.env.OUT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), prefix)),
    STEP_TIMEOUT_MS: Number(process.env.STEP_TIMEOUT_MS) || 10000,
    RUN_TIMEOUT_MS,
    ARGS
  }
}

// `run(browser)` sets result.ok; the exit code is 0 only then. result.json is written either way.
function runDriver (run, result, { CHROMIUM, OUT_DIR, STEP_TIMEOUT_MS }) {
  const finish = async (browser, code) => {
    fs.writeFileSync(path.join(OUT_DIR, 'result.json'), JSON.stringify(result, null, 2))
    await browser.close().catch(() => {})
    process.exit(code)
  }
  const main = async () => {
    const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS, timeout: STEP_TIMEOUT_MS * 2 })
    const cap = setTimeout(() => {
      result.error = `run did not finish within ${RUN_TIMEOUT_MS} ms`
      finish(browser, 1)
    }, RUN_TIMEOUT_MS)
    try {
      await run(browser)
    } catch (error) {
      result.error = error.stack || String(error)
    } finally {
      clearTimeout(cap)
    }
    await finish(browser, result.ok ? 0 : 1)
  }
  main().catch((error) => {
    result.error = error.stack || String(error)
    fs.writeFileSync(path.join(OUT_DIR, 'result.json'), JSON.stringify(result, null, 2))
    process.exit(1)
  })
}

const stepLogger = (result) => (name) => { result.steps.push(name); console.log('step:', name) }

module.exports = { settings, runDriver, stepLogger }
