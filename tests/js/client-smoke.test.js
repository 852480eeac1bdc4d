'use strict'
// Smoke test of the official Feathers clients against the server's `messages` service.
//
//   cd tests/js
//   SERVER_URL=http://127.0.0.1:3030 TRANSPORT=rest \
//     node node_modules/mocha/bin/mocha.js client-smoke.test.js
//
// Environment:
//   TRANSPORT  'rest' or 'socketio'; unset runs both, one after the other
//   REALTIME   '1' enables describe('realtime') (socketio only): events pushed by the server
//              to an unauthenticated socket for changes made through REST
//   SMOKE_SERVICE  service path (default 'messages')
//   SERVER_URL, API_PATH, SOCKETIO_PATH: see lib/client.js
const assert = require('assert')
const authClient = require('@feathersjs/authentication-client')
const errors = require('@feathersjs/errors')
const { makeClient, restBase, SERVER_URL } = require('./lib/client')

const SERVICE = process.env.SMOKE_SERVICE || 'messages'
const TRANSPORTS = process.env.TRANSPORT ? [process.env.TRANSPORT] : ['rest', 'socketio']
const REALTIME = process.env.REALTIME === '1'
const HEX24 = /^[0-9a-f]{24}$/
const MISSING_ID = '568225fbfe21222432e836ff'
const EVENT_TIMEOUT_MS = 5000

const expectRejection = async (promise, ErrorClass, name, code) => {
  let error
  try {
    await promise
  } catch (e) {
    error = e
  }
  assert.ok(error, `expected a ${name} rejection, the call succeeded`)
  assert.strictEqual(error.name, name, `error.name (message: ${error.message})`)
  assert.strictEqual(error.code, code, 'error.code')
  assert.ok(error instanceof ErrorClass, `error is an instance of errors.${name}`)
  assert.ok(error instanceof errors.FeathersError, 'error is an instance of errors.FeathersError')
  return error
}

for (const transport of TRANSPORTS) {
  describe(`official ${transport} client smoke against ${SERVER_URL} '${SERVICE}'`, function () {
    const client = makeClient(transport)
    const app = client.app
    app.configure(authClient())
    const messages = app.service(SERVICE)
    let created = null

    const needCreated = () => assert.ok(created, 'the create test failed earlier')

    before(async function () {
      this.timeout(30000)
      await client.ready()
    })

    after(() => client.close())

    if (transport === 'rest') {
      it('POST answers 201 with the JSON record', async () => {
        const res = await fetch(`${restBase()}/${SERVICE}`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
          body: JSON.stringify({ text: 'raw', n: 1 })
        })
        assert.strictEqual(res.status, 201)
        assert.match(res.headers.get('content-type') || '', /application\/json/)
        const body = await res.json()
        assert.strictEqual(body.text, 'raw')
        assert.ok(body._id !== undefined, 'has _id')
        await messages.remove(body._id)
      })
    }

    it('create returns the record with a 24-hex string _id', async () => {
      const result = await messages.create({ text: 'hi', n: 3 })
      assert.strictEqual(result.text, 'hi')
      assert.strictEqual(result.n, 3)
      created = result
      assert.strictEqual(typeof result._id, 'string', `_id is a string (got ${JSON.stringify(result._id)})`)
      assert.match(result._id, HEX24)
    })

    it('find with $gt and $limit returns a page {total, limit, skip, data}', async () => {
      needCreated()
      const page = await messages.find({ query: { n: { $gt: 2 }, $limit: 10 } })
      assert.ok(page && !Array.isArray(page), `expected a page object, got ${JSON.stringify(page)}`)
      assert.strictEqual(typeof page.total, 'number', 'total is a number')
      assert.ok(page.total >= 1, 'total >= 1')
      assert.strictEqual(page.limit, 10)
      assert.strictEqual(page.skip, 0)
      assert.ok(Array.isArray(page.data), 'data is an array')
      assert.ok(page.data.length <= 10)
      assert.ok(
        page.data.every((m) => typeof m.n === 'number' && m.n > 2),
        'every record matches n > 2'
      )
      assert.ok(
        page.data.some((m) => m._id === created._id),
        'the created record is found'
      )
    })

    it('get returns the record', async () => {
      needCreated()
      const result = await messages.get(created._id)
      assert.deepStrictEqual(result, created)
    })

    it('patch merges into the record', async () => {
      needCreated()
      const result = await messages.patch(created._id, { text: 'patched' })
      assert.strictEqual(result._id, created._id)
      assert.strictEqual(result.text, 'patched')
      assert.strictEqual(result.n, 3)
    })

    it('update replaces the record', async () => {
      needCreated()
      const result = await messages.update(created._id, { text: 'updated', n: 4 })
      assert.strictEqual(result._id, created._id)
      assert.strictEqual(result.text, 'updated')
      assert.strictEqual(result.n, 4)
    })

    it('remove returns the removed record, then get is NotFound', async () => {
      needCreated()
      const result = await messages.remove(created._id)
      assert.strictEqual(result._id, created._id)
      assert.strictEqual(result.text, 'updated')
      await expectRejection(messages.get(created._id), errors.NotFound, 'NotFound', 404)
    })

    it('get of a missing id rejects with errors.NotFound (404)', async () => {
      const error = await expectRejection(messages.get(MISSING_ID), errors.NotFound, 'NotFound', 404)
      assert.strictEqual(error.className, 'not-found')
    })

    it('an unknown query operator rejects with errors.BadRequest (400)', async () => {
      const error = await expectRejection(
        messages.find({ query: { n: { $regex: 'x' } } }),
        errors.BadRequest,
        'BadRequest',
        400
      )
      assert.strictEqual(error.className, 'bad-request')
    })

    if (transport === 'socketio') {
      ;(REALTIME ? describe : describe.skip)('realtime', () => {
        const restClient = makeClient('rest')
        const restMessages = restClient.app.service(SERVICE)

        // Starts listening at once; the returned promise has a no-op catch attached so a
        // failing call before it is awaited does not produce an unhandled rejection.
        const nextEvent = (event, predicate) => {
          const promise = new Promise((resolve, reject) => {
            const listener = (data) => {
              if (!predicate(data)) return
              clearTimeout(timer)
              messages.removeListener(event, listener)
              resolve(data)
            }
            const timer = setTimeout(() => {
              messages.removeListener(event, listener)
              reject(new Error(`no '${SERVICE} ${event}' event within ${EVENT_TIMEOUT_MS} ms`))
            }, EVENT_TIMEOUT_MS)
            messages.on(event, listener)
          })
          promise.catch(() => {})
          return promise
        }

        let record = null

        it("receives 'created' for a create made through REST", async () => {
          const text = `rt-${Date.now()}-${Math.random()}`
          const createdEvent = nextEvent('created', (m) => m && m.text === text)
          record = await restMessages.create({ text, n: 5 })
          assert.deepStrictEqual(await createdEvent, record)
        })

        it("receives 'patched' and 'removed' for changes made through REST", async () => {
          assert.ok(record, 'the created test failed earlier')
          const patchedEvent = nextEvent('patched', (m) => m && m._id === record._id)
          const patched = await restMessages.patch(record._id, { n: 6 })
          assert.deepStrictEqual(await patchedEvent, patched)

          const removedEvent = nextEvent('removed', (m) => m && m._id === record._id)
          const removed = await restMessages.remove(record._id)
          assert.deepStrictEqual(await removedEvent, removed)
        })

        it("another socket client receives 'created' for a create made through a socket", async () => {
          const other = makeClient('socketio')
          const otherMessages = other.app.service(SERVICE)
          const text = `sock-${Date.now()}-${Math.random()}`
          const received = new Promise((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('no created event on the other socket')), EVENT_TIMEOUT_MS)
            otherMessages.on('created', (m) => {
              if (m && m.text === text) {
                clearTimeout(timer)
                resolve(m)
              }
            })
          })
          received.catch(() => {})
          try {
            await other.ready()
            const created = await messages.create({ text })
            assert.deepStrictEqual(await received, created)
          } finally {
            if (other.close) other.close()
          }
        })
      })
    }
  })
}
