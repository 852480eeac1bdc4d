'use strict'
// The official @feathersjs/authentication-client against the server's `authentication`,
// `users` and `notes` services, over rest-client and over socketio-client:
// register, local login, protected calls, a "reloaded" app (a new client app sharing the
// same storage) re-authenticating with the jwt strategy, logout, and 401 afterwards.
//
//   cd tests/js
//   SERVER_URL=http://127.0.0.1:8081 node node_modules/mocha/bin/mocha.js auth.test.js
//
// Environment: TRANSPORT ('rest' or 'socketio'; unset runs both), and SERVER_URL, API_PATH,
// SOCKETIO_PATH as in lib/client.js.
const assert = require('assert')
const crypto = require('crypto')
const { feathers } = require('@feathersjs/feathers')
const rest = require('@feathersjs/rest-client')
const socketio = require('@feathersjs/socketio-client')
const authClient = require('@feathersjs/authentication-client')
const errors = require('@feathersjs/errors')
const { io } = require('socket.io-client')
const { restBase, socketOrigin, waitConnected, SOCKETIO_PATH, SERVER_URL } = require('./lib/client')

const TRANSPORTS = process.env.TRANSPORT ? [process.env.TRANSPORT] : ['rest', 'socketio']
const EVENT_TIMEOUT_MS = 5000

const makeApp = (transport, storage) => {
  const app = feathers()
  let socket = null
  if (transport === 'rest') {
    app.configure(rest(restBase()).fetch(fetch))
  } else {
    socket = io(socketOrigin(), {
      path: SOCKETIO_PATH,
      transports: ['websocket'],
      reconnectionDelay: 200,
      reconnectionDelayMax: 1000
    })
    app.configure(socketio(socket))
  }
  app.configure(authClient({ storage }))
  return {
    app,
    socket,
    ready: async () => (socket ? waitConnected(socket) : null),
    close: () => socket && socket.close()
  }
}

const rejectsWith = async (promise, name, code) => {
  let error
  try {
    await promise
  } catch (e) {
    error = e
  }
  assert.ok(error, `expected a ${name} rejection, the call succeeded`)
  assert.strictEqual(error.name, name, `error.name (message: ${error.message})`)
  assert.strictEqual(error.code, code)
  assert.ok(error instanceof errors.FeathersError)
  return error
}

const nextEvent = (service, event) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no '${event}' event within ${EVENT_TIMEOUT_MS} ms`)), EVENT_TIMEOUT_MS)
    service.once(event, (data) => {
      clearTimeout(timer)
      resolve(data)
    })
  })

for (const transport of TRANSPORTS) {
  describe(`authentication-client over ${transport} against ${SERVER_URL}`, function () {
    this.timeout(20000)
    const storage = new authClient.MemoryStorage()
    const email = `js-${transport}-${crypto.randomUUID()}@example.com`
    const password = 'a long enough password'
    const clients = []
    let first = null
    let reloaded = null
    let user = null
    let token = null

    const open = async () => {
      const client = makeApp(transport, storage)
      clients.push(client)
      await client.ready()
      return client.app
    }

    before(async () => {
      first = await open()
    })

    after(() => clients.forEach((client) => client.close()))

    it('registers a user without being logged in; the password never comes back', async () => {
      user = await first.service('users').create({ email, password })
      assert.strictEqual(user.email, email)
      assert.strictEqual(user.role, 'user')
      assert.ok(/^[0-9a-f]{24}$/.test(user._id))
      assert.ok(!('password' in user))
    })

    it('refuses protected calls before login with NotAuthenticated', async () => {
      await rejectsWith(first.service('notes').find(), 'NotAuthenticated', 401)
    })

    it('refuses a wrong password with NotAuthenticated, and stores nothing', async () => {
      await rejectsWith(first.authenticate({ strategy: 'local', email, password: 'wrong password' }), 'NotAuthenticated', 401)
      assert.strictEqual(await storage.getItem('feathers-jwt'), undefined)
    })

    it('logs in with the local strategy and stores the access token', async () => {
      const result = await first.authenticate({ strategy: 'local', email, password })
      token = result.accessToken
      assert.ok(token.split('.').length === 3)
      assert.strictEqual(result.authentication.strategy, 'local')
      assert.strictEqual(result.authentication.payload.sub, user._id)
      assert.deepStrictEqual(result.user, user)
      assert.strictEqual(await storage.getItem('feathers-jwt'), token)
    })

    it('calls protected methods as that user', async () => {
      const note = await first.service('notes').create({ text: `from ${transport}` })
      assert.strictEqual(note.owner, user._id)
      const page = await first.service('notes').find({ query: { $limit: 5 } })
      assert.strictEqual(page.total, 1)
      assert.strictEqual(page.data[0]._id, note._id)
      const me = await first.service('users').get(user._id)
      assert.ok(!('password' in me))
    })

    it('a reloaded app re-authenticates from storage with the jwt strategy', async () => {
      reloaded = await open()
      const result = await reloaded.reAuthenticate()
      assert.strictEqual(result.accessToken, token)
      assert.strictEqual(result.authentication.strategy, 'jwt')
      assert.strictEqual(result.user._id, user._id)
      const page = await reloaded.service('notes').find()
      assert.strictEqual(page.total, 1)
    })

    if (transport === 'socketio') {
      it('the re-authenticated socket receives its own notes events', async () => {
        const received = nextEvent(reloaded.service('notes'), 'created')
        const note = await first.service('notes').create({ text: 'event' })
        const event = await received
        assert.strictEqual(event._id, note._id)
        assert.strictEqual(event.owner, user._id)
      })
    }

    it('logs out, forgets the token, and gets 401 on protected calls afterwards', async () => {
      const result = await reloaded.logout()
      assert.strictEqual(result.user._id, user._id)
      assert.strictEqual(await storage.getItem('feathers-jwt'), undefined)
      await rejectsWith(reloaded.service('notes').find(), 'NotAuthenticated', 401)
      await rejectsWith(reloaded.reAuthenticate(), 'NotAuthenticated', 401)
    })
  })
}
