'use strict'
// Runs in a page of another origin than the API (tests/transports/test_cors.py serves it): calls the API
// with the official REST client (fetch) and Socket.IO client, and reports what got through.
;(function () {
  const TIMEOUT_MS = 5000

  function withTimeout (promise, what) {
    return Promise.race([
      promise,
      new Promise((resolve, reject) => setTimeout(() => reject(new Error(`${what}: no answer in ${TIMEOUT_MS} ms`)), TIMEOUT_MS))
    ])
  }

  async function attempt (call) {
    try {
      return { ok: true, value: await call() }
    } catch (error) {
      return { ok: false, name: error.name, code: error.code, message: String(error.message || error) }
    }
  }

  function connect (api, transports, credentials) {
    const socket = window.io(api, { transports, withCredentials: credentials, reconnection: false, timeout: TIMEOUT_MS })
    const connected = new Promise((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('connect_error', reject)
    })
    return withTimeout(connected, 'socket connect').then(() => socket, (error) => { socket.close(); throw error })
  }

  async function socketCheck (api, transports, credentials, restMessages) {
    const socket = await connect(api, transports, credentials)
    try {
      const client = window.feathers().configure(window.feathers.socketio(socket))
      const messages = client.service('messages')
      const found = await withTimeout(messages.find({ query: { $limit: 1 } }), 'socket find')
      const tag = `cors-live-${Math.random().toString(36).slice(2, 10)}`
      const live = new Promise((resolve) => messages.on('created', (m) => { if (m.tag === tag) resolve(m) }))
      await restMessages.create({ text: 'created over REST, seen live', tag })
      const event = await withTimeout(live, 'created event')
      // Default transports start with long-polling; the upgrade must get through as well.
      const deadline = Date.now() + TIMEOUT_MS
      while (socket.io.engine.transport.name !== 'websocket' && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50))
      }
      return { total: found.total, event: event.tag === tag, transport: socket.io.engine.transport.name }
    } finally {
      socket.close()
    }
  }

  window.corsCheck = async function (api, options) {
    const credentials = Boolean(options && options.credentials)
    const fetchImpl = credentials
      ? (url, init) => window.fetch(url, { ...init, credentials: 'include' })
      : window.fetch.bind(window)
    const rest = window.feathers().configure(window.feathers.rest(api).fetch(fetchImpl))
    const messages = rest.service('messages')
    const out = { origin: window.location.origin }
    // JSON body: a preflighted request.
    out.restCreate = await attempt(async () => {
      const created = await messages.create({ text: `from ${out.origin}`, tag: 'cors' })
      return { id: created._id, text: created.text }
    })
    out.restFind = await attempt(async () => (await messages.find({ query: { tag: 'cors', $limit: 1 } })).total)
    // A 4xx must reach the page as the Feathers error, not as an opaque network failure.
    out.restError = await attempt(() => rest.service('notes').find({ headers: { Authorization: 'Bearer not-a-token' } }))
    out.socketDefault = await attempt(() => socketCheck(api, ['polling', 'websocket'], credentials, messages))
    out.socketWebsocket = await attempt(() => socketCheck(api, ['websocket'], credentials, messages))
    return out
  }
})()
