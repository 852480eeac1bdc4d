'use strict'
// Headless Chromium on Swagger UI at /docs: the vendored build renders the app's own
// /openapi.json under the page's CSP, with no request leaving the server's origin.
//
//   cd tests/browser && npm ci
//   SERVER_URL=http://127.0.0.1:8081 node swagger-ui.js
//
// Environment: SERVER_URL, CHROMIUM, OUT_DIR (swagger-ui.png and result.json go there),
// STEP_TIMEOUT_MS (default 10000); the whole run is capped at 45 s.
const path = require('path')
const { settings, runDriver, stepLogger } = require('./driver')

const SETTINGS = settings('kdk-swagger-')
const { SERVER_URL, OUT_DIR, STEP_TIMEOUT_MS } = SETTINGS

const result = { ok: false, steps: [], consoleErrors: [], foreignRequests: [], title: null, screenshot: null }
const step = stepLogger(result)

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

runDriver(run, result, SETTINGS)
