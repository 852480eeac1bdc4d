'use strict'
// Two headless Chromium pages on the kdk-app page: one adds a message, the other shows it
// without a reload; then a REST patch and a click on Delete reach both pages live. Last, a new
// user registers, logs in, survives a reload, logs out and logs in again from the page.
//
//   cd tests/browser && npm ci
//   SERVER_URL=http://127.0.0.1:8081 node live-update.js
//
// Environment:
//   SERVER_URL   the app (default http://127.0.0.1:8081); the page is at `${SERVER_URL}/`
//   CHROMIUM     browser executable (default /usr/bin/chromium)
//   OUT_DIR      where screenshots and result.json go (default: a new temp dir)
//   STEP_TIMEOUT_MS  per wait (default 10000); the whole run is capped at 45 s
// Exit code 0 when every check passed; result.json lists the steps and browser console errors.
const path = require('path')
const { settings, runDriver, stepLogger } = require('./driver')

const SETTINGS = settings('kdk-browser-')
const { SERVER_URL, OUT_DIR, STEP_TIMEOUT_MS } = SETTINGS

const result = { ok: false, steps: [], consoleErrors: [], navigations: {}, screenshots: [] }
const step = stepLogger(result)

function watch (page, label) {
  result.navigations[label] = 0
  page.on('console', (msg) => {
    if (msg.type() === 'error') result.consoleErrors.push(`${label}: ${msg.text()}`)
  })
  page.on('pageerror', (error) => result.consoleErrors.push(`${label}: uncaught ${error.message}`))
  page.on('framenavigated', (frame) => {
    if (frame === page.mainFrame()) result.navigations[label] += 1
  })
}

async function openPage (browser, label) {
  // A context each: two independent visitors, two Socket.IO connections.
  const context = await browser.newContext({ viewport: { width: 900, height: 700 } })
  const page = await context.newPage()
  watch(page, label)
  await page.goto(`${SERVER_URL}/`, { waitUntil: 'load' })
  await page.waitForSelector('#status[data-state="live"]', { timeout: STEP_TIMEOUT_MS })
  // 'attached': an empty list has no height, so it never counts as visible.
  await page.waitForSelector('#messages[data-state="ready"]', { state: 'attached', timeout: STEP_TIMEOUT_MS })
  // Survives only if the page is never reloaded.
  await page.evaluate(() => { window.__noReloadMarker = 'still here' })
  return page
}

const itemWithText = (page, text) =>
  page.locator('#messages li.message').filter({ has: page.locator('.text', { hasText: text }) })

async function run (browser) {
  const pageA = await openPage(browser, 'A')
  const pageB = await openPage(browser, 'B')
  step('both pages live')
  // Default transports: long-polling first, then the upgrade to WebSocket must succeed.
  for (const page of [pageA, pageB]) {
    await page.waitForFunction(() => window.kdkPage.socket.io.engine.transport.name === 'websocket',
      null, { timeout: STEP_TIMEOUT_MS })
  }
  step('both sockets upgraded to websocket')

  // Markup in the text must come out as text on the other page (no innerHTML).
  const marker = `browser ${Date.now()}-${Math.random().toString(36).slice(2, 8)}`
  const text = `hello from A <b class="injected">${marker}</b> & <img src=x onerror=alert(1)>`
  await pageA.fill('#composer-text', text)
  await pageA.fill('#composer-tag', 'e2e')
  await pageA.click('#composer button[type=submit]')
  step('A submitted a message')

  const onB = itemWithText(pageB, marker)
  await onB.waitFor({ timeout: STEP_TIMEOUT_MS })
  const shown = await onB.locator('.text').textContent()
  if (shown !== text) throw new Error(`B shows ${JSON.stringify(shown)}, expected ${JSON.stringify(text)}`)
  if (await pageB.locator('#messages .injected, #messages img').count() !== 0) {
    throw new Error('message text was rendered as HTML on B')
  }
  if (await pageB.locator('#messages li.message').first().getAttribute('data-id') !==
      await onB.getAttribute('data-id')) {
    throw new Error('the new message is not first (newest first) on B')
  }
  if ((await onB.locator('.tag').textContent()) !== '#e2e') throw new Error('tag not shown on B')
  step('B shows the new message live, escaped, first')

  const id = await onB.getAttribute('data-id')
  await itemWithText(pageA, marker).waitFor({ timeout: STEP_TIMEOUT_MS })
  if (await pageA.inputValue('#composer-text') !== '') throw new Error('A did not clear the form')
  for (const [label, page] of [['A', pageA], ['B', pageB]]) {
    const count = await itemWithText(page, marker).count()
    if (count !== 1) throw new Error(`page ${label} shows the message ${count} times`)
  }
  step('A shows its own message once and cleared the form')

  // A change made by a third, non-browser client reaches both pages.
  const res = await fetch(`${SERVER_URL}/messages/${id}`, {
    method: 'PATCH',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ n: 42 })
  })
  if (!res.ok) throw new Error(`REST patch answered ${res.status}`)
  for (const page of [pageA, pageB]) {
    await page.locator(`#messages li[data-id="${id}"] .number`, { hasText: 'n = 42' })
      .waitFor({ timeout: STEP_TIMEOUT_MS })
  }
  step('a REST patch shows on both pages')

  const screenshot = path.join(OUT_DIR, 'page-b.png')
  await pageB.screenshot({ path: screenshot, fullPage: true })
  result.screenshots.push(screenshot)
  step('screenshot of B')

  await pageB.locator(`#messages li[data-id="${id}"] .remove`).click()
  for (const page of [pageA, pageB]) {
    await page.locator(`#messages li[data-id="${id}"]`).waitFor({ state: 'detached', timeout: STEP_TIMEOUT_MS })
  }
  step('Delete on B removes the message from both pages')

  for (const [label, page] of [['A', pageA], ['B', pageB]]) {
    const kept = await page.evaluate(() => window.__noReloadMarker)
    if (kept !== 'still here' || result.navigations[label] !== 1) {
      throw new Error(`page ${label} was reloaded (navigations: ${result.navigations[label]})`)
    }
  }
  step('no page was reloaded')

  // A new user registers and logs in from the page, stays logged in across a reload (the
  // stored token, strategy jwt), logs out, and logs in again with the form.
  const email = `user-${Date.now()}-${Math.random().toString(36).slice(2, 6)}@example.org`
  const signedIn = (page) => page.waitForSelector(`body[data-user="${email}"]`, { state: 'attached', timeout: STEP_TIMEOUT_MS })
  await pageA.fill('#login-email', email)
  await pageA.fill('#login-password', 'correct horse battery')
  await pageA.click('#register-button')
  await signedIn(pageA)
  if ((await pageA.locator('#session-email').textContent()) !== email) throw new Error('session email not shown')
  step('a new user registered and is logged in on A')
  await pageA.reload({ waitUntil: 'load' })
  await signedIn(pageA)
  step('A is still logged in after a reload')
  await pageA.click('#logout-button')
  await pageA.waitForSelector('body[data-user=""]', { state: 'attached', timeout: STEP_TIMEOUT_MS })
  await pageA.waitForSelector('#login', { state: 'visible', timeout: STEP_TIMEOUT_MS })
  step('A logged out')
  await pageA.fill('#login-email', email)
  await pageA.fill('#login-password', 'correct horse battery')
  await pageA.click('#login-button')
  await signedIn(pageA)
  step('A logged in again with the form')

  if (result.consoleErrors.length) throw new Error('browser console errors: ' + result.consoleErrors.join(' | '))
  result.ok = true
}

runDriver(run, result, SETTINGS)
