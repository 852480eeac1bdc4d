'use strict'
// Two headless Chromium pages on the chat example (examples/chat, the Feathers chat guide's app):
// A signs up and is logged in, B logs in as a seeded user; both show the newest 25 seeded
// messages with their authors; A sends a message that B shows at once; A reloads and is still
// logged in (the stored token), then logs out and stays out after another reload.
//
//   SERVER_URL=http://127.0.0.1:8081 SEED=seed.json node chat-example.js
//
// Environment:
//   SERVER_URL   the chat server (its page is at `${SERVER_URL}/`)
//   SEED         JSON written by the test: {user: {email, password}, newest: [{text, email, avatar}]}
//                where `newest` are the 25 newest seeded messages, oldest first
//   CHROMIUM     browser executable (default /usr/bin/chromium)
//   OUT_DIR      where the screenshot and result.json go (default: a new temp dir)
//   STEP_TIMEOUT_MS  per wait (default 10000); the whole run is capped at 45 s
// Exit code 0 when every check passed; result.json lists the steps and browser console errors.
const crypto = require('crypto')
const fs = require('fs')
const path = require('path')
const { settings, runDriver, stepLogger } = require('./driver')

const SETTINGS = settings('kdk-chat-')
const { SERVER_URL, OUT_DIR, STEP_TIMEOUT_MS } = SETTINGS
const SEED = JSON.parse(fs.readFileSync(process.env.SEED, 'utf8'))
// A 1x1 PNG answers the Gravatar requests: the test never goes to the internet.
const PIXEL = Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=', 'base64')

const result = { ok: false, steps: [], consoleErrors: [], navigations: {}, avatarsRequested: 0 }
const step = stepLogger(result)
const check = (ok, message) => { if (!ok) throw new Error(message) }
const gravatar = (email) =>
  `https://s.gravatar.com/avatar/${crypto.createHash('md5').update(email.toLowerCase()).digest('hex')}?s=60`

async function openPage (browser, label) {
  // A context each: two visitors with their own localStorage and Socket.IO connection.
  const context = await browser.newContext({ viewport: { width: 1000, height: 800 } })
  await context.route('https://s.gravatar.com/**', (route) => {
    result.avatarsRequested += 1
    return route.fulfill({ status: 200, contentType: 'image/png', body: PIXEL })
  })
  const page = await context.newPage()
  result.navigations[label] = 0
  page.on('console', (msg) => { if (msg.type() === 'error') result.consoleErrors.push(`${label}: ${msg.text()}`) })
  page.on('pageerror', (error) => result.consoleErrors.push(`${label}: uncaught ${error.message}`))
  page.on('framenavigated', (frame) => { if (frame === page.mainFrame()) result.navigations[label] += 1 })
  await page.goto(`${SERVER_URL}/`, { waitUntil: 'load' })
  await page.waitForSelector('#login', { state: 'visible', timeout: STEP_TIMEOUT_MS })
  return page
}

const loggedIn = (page, email) =>
  page.waitForSelector(`body[data-user="${email}"]`, { state: 'attached', timeout: STEP_TIMEOUT_MS })
const ready = (page) =>
  page.waitForSelector('#messages[data-state="ready"]', { state: 'attached', timeout: STEP_TIMEOUT_MS })

async function shownMessages (page) {
  return page.$$eval('#messages li.message', (items) => items.map((item) => ({
    text: item.querySelector('.text').textContent,
    email: item.querySelector('.email').textContent,
    avatar: item.querySelector('img.avatar').getAttribute('src'),
    createdAt: Number(item.dataset.createdAt)
  })))
}

async function checkNewest25 (page, label) {
  await ready(page)
  const shown = await shownMessages(page)
  check(shown.length === 25, `${label} shows ${shown.length} messages, not 25`)
  // Asked for newest first ($sort createdAt -1, $limit 25), shown oldest to newest.
  const times = shown.map((m) => m.createdAt)
  check(times.every((t, i) => i === 0 || times[i - 1] < t), `${label}: messages out of order ${times}`)
  const expected = JSON.stringify(SEED.newest)
  const actual = JSON.stringify(shown.map(({ text, email, avatar }) => ({ text, email, avatar })))
  check(actual === expected, `${label} shows ${actual}\nexpected ${expected}`)
}

async function run (browser) {
  const email = `Chat-${Date.now()}-${Math.random().toString(36).slice(2, 6)}@Example.org`
  const lower = email.toLowerCase()
  const password = 'correct horse battery'

  const pageA = await openPage(browser, 'A')
  await pageA.fill('#email', email)
  await pageA.fill('#password', password)
  await pageA.click('#signup-button')
  await loggedIn(pageA, lower)
  check(await pageA.locator('#me').textContent() === lower, 'A does not show its lower-cased email')
  step('A signed up and is logged in')
  await checkNewest25(pageA, 'A')
  step('A shows the newest 25 seeded messages with their users')
  const me = pageA.locator('#users li.user')
  check(await me.count() === 1 && await me.locator('.email').textContent() === lower, 'A does not list itself')
  check(await me.locator('img').getAttribute('src') === gravatar(lower), 'A has no gravatar')
  step('A lists its own user with its gravatar')

  const pageB = await openPage(browser, 'B')
  await pageB.fill('#email', SEED.user.email)
  await pageB.fill('#password', 'not the password')
  await pageB.click('#login-button')
  await pageB.locator('#login-error', { hasText: 'Invalid login' }).waitFor({ timeout: STEP_TIMEOUT_MS })
  step('B is refused with a wrong password')
  await pageB.fill('#password', SEED.user.password)
  await pageB.click('#login-button')
  await loggedIn(pageB, SEED.user.email)
  await checkNewest25(pageB, 'B')
  step('B logged in and shows the same 25 messages')

  // Default transports: long-polling first, then the upgrade to WebSocket must succeed.
  for (const page of [pageA, pageB]) {
    await page.waitForFunction(() => window.chat.socket.io.engine.transport.name === 'websocket',
      null, { timeout: STEP_TIMEOUT_MS })
  }
  step('both sockets upgraded to websocket')

  // Markup in the text must arrive as text.
  const text = `hello from A <b class="injected">${Date.now()}</b> & <img src=x onerror=alert(1)>`
  await pageA.fill('#message-text', text)
  await pageA.click('#send-message button[type=submit]')
  const last = (page) => page.locator('#messages li.message').last()
  await pageB.locator('#messages li.message .text', { hasText: text }).waitFor({ timeout: STEP_TIMEOUT_MS })
  check(await last(pageB).locator('.text').textContent() === text, 'the new message is not last on B')
  check(await last(pageB).locator('.email').textContent() === lower, 'B does not show the author')
  check(await last(pageB).locator('img.avatar').getAttribute('src') === gravatar(lower), 'no author avatar on B')
  check(await pageB.locator('#messages .injected').count() === 0, 'the text was rendered as HTML on B')
  check(result.navigations.B === 1, 'B was reloaded')
  step('B shows A\'s message at once, with its author, as text')
  await pageA.locator('#messages li.message .text', { hasText: text }).waitFor({ timeout: STEP_TIMEOUT_MS })
  check(await pageA.locator('#messages li.message .text', { hasText: text }).count() === 1, 'A shows it twice')
  check(await pageA.inputValue('#message-text') === '', 'A did not clear the input')
  step('A shows its message once and cleared the input')

  const screenshot = path.join(OUT_DIR, 'chat-b.png')
  await pageB.screenshot({ path: screenshot, fullPage: true })

  await pageA.reload({ waitUntil: 'load' })
  await loggedIn(pageA, lower)
  await ready(pageA)
  check(await last(pageA).locator('.text').textContent() === text, 'A lost the message after a reload')
  step('A is still logged in after a reload (reAuthenticate)')

  await pageA.click('#logout-button')
  await pageA.waitForSelector('#login', { state: 'visible', timeout: STEP_TIMEOUT_MS })
  check(await pageA.evaluate(() => document.body.dataset.user) === '', 'A still names a user')
  check(await pageA.evaluate(() => window.localStorage.getItem('feathers-jwt')) === null, 'the token was kept')
  await pageA.reload({ waitUntil: 'load' })
  await pageA.waitForSelector('#login', { state: 'visible', timeout: STEP_TIMEOUT_MS })
  check(await pageA.locator('#chat').isHidden(), 'A shows the chat after logging out')
  step('A logged out and stays logged out after a reload')

  check(result.avatarsRequested > 0, 'no avatar was requested')
  check(!result.consoleErrors.length, 'browser console errors: ' + result.consoleErrors.join(' | '))
  result.ok = true
}

runDriver(run, result, SETTINGS)
