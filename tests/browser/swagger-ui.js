'use strict'
// Headless Chromium on Swagger UI at /docs: the vendored build renders the app's own
// /openapi.json under the page's CSP, with no request leaving the server's origin.
//
//   cd tests/browser && npm ci
//   SERVER_URL=http://127.0.0.1:8081 node swagger-ui.js
//
// Environment: SERVER_URL, CHROMIUM, OUT_DIR (swagger-ui.png and result.json go there),
// STEP_TIMEOUT_MS (default 10000); the whole run is capped at 45 s.
const fs = require('fs')
const os = require('os')
const path = require('path')
const { chromium } = require('playwright-core')

const SERVER_URL = (process.env.SERVER_URL || 'http://127.0.0.1:8081').replace(/\/$/, '')
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium'
const OUT_DIR = process.env.OUT_DIR || fs.mkdtempSync(path.join(os.tmpdir(), 'kdk-swagger-'))
const STEP_TIMEOUT_MS = Number(process.env.STEP_TIMEOUT_MS) || 10000
const RUN_TIMEOUT_MS = 45000
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'
]

const result = { ok: false, steps: [], consoleErrors: [], foreignRequests: [], title: null, screenshot: null }
const step = (name) => { result.steps.push(name); console.log('step:', name) }

async function run (browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } })
  const page = await context.newPage()
  page.on('console', (msg) => { if (msg.type() === 'error') result.consoleErrors.push(msg.text()) })
  page.on('pageerror', (error) => result.consoleErrors.push(`uncaught ${error.message}`))
  const origin = new URL(SERVER_URL).origin
  page.on('request', (request) => {
    const url = request.url()
    if (!url.startsWith(origin) && !url.startsWith('data:')) result.foreignRequests.push(url)
  })

  await page.goto(`${SERVER_URL}/docs`, { waitUntil: 'load' })
  const title = page.locator('.swagger-ui .info .title')
  await title.waitFor({ timeout: STEP_TIMEOUT_MS })
  result.title = (await title.textContent()).trim()
  step('the document info rendered')

  // The operation blocks of the messages service (tag "messages").
  const find = page.locator('.opblock.opblock-get', { has: page.locator('[data-path="/messages"]') }).first()
  await find.waitFor({ timeout: STEP_TIMEOUT_MS })
  step('GET /messages is listed')
  await find.locator('.opblock-summary').first().click()
  await page.locator('.opblock.is-open .parameters-container').first().waitFor({ timeout: STEP_TIMEOUT_MS })
  step('GET /messages opens with its parameters')

  await page.evaluate(() => window.scrollTo(0, 0)) // the title and the first operations
  const screenshot = path.join(OUT_DIR, 'swagger-ui.png')
  await page.screenshot({ path: screenshot, fullPage: false })
  result.screenshot = screenshot
  step('screenshot')

  if (result.consoleErrors.length) throw new Error('browser console errors: ' + result.consoleErrors.join(' | '))
  if (result.foreignRequests.length) throw new Error('requests left the origin: ' + result.foreignRequests.join(' '))
  result.ok = true
}

async function main () {
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

async function finish (browser, code) {
  fs.writeFileSync(path.join(OUT_DIR, 'result.json'), JSON.stringify(result, null, 2))
  await browser.close().catch(() => {})
  process.exit(code)
}

main().catch((error) => {
  result.error = error.stack || String(error)
  fs.writeFileSync(path.join(OUT_DIR, 'result.json'), JSON.stringify(result, null, 2))
  process.exit(1)
})
