'use strict'
// Shared helpers: build an official Feathers *client* app pointed at the server under test.
//
// Environment:
//   SERVER_URL     base URL of the server (default http://127.0.0.1:3030). Socket.IO always
//                  connects to its origin (scheme://host:port); any path in it is kept for REST.
//   API_PATH       extra prefix for REST calls only (e.g. /api), appended to SERVER_URL (default '').
//   SOCKETIO_PATH  Socket.IO endpoint path (default /socket.io).
//   CONNECT_TIMEOUT_MS  how long to wait for the socket to connect (default 10000).
const { feathers } = require('@feathersjs/feathers')
const rest = require('@feathersjs/rest-client')
const socketio = require('@feathersjs/socketio-client')
const { io } = require('socket.io-client')

const SERVER_URL = (process.env.SERVER_URL || 'http://127.0.0.1:3030').replace(/\/+$/, '')
const API_PATH = (process.env.API_PATH || '').replace(/\/+$/, '')
const SOCKETIO_PATH = process.env.SOCKETIO_PATH || '/socket.io'
const CONNECT_TIMEOUT_MS = Number(process.env.CONNECT_TIMEOUT_MS || 10000)

const restBase = () => {
  if (!API_PATH) return SERVER_URL
  return SERVER_URL + (API_PATH.startsWith('/') ? API_PATH : `/${API_PATH}`)
}

const socketOrigin = () => new URL(SERVER_URL).origin

// Resolve once the socket is connected; reject with the last connect_error after the timeout.
const waitConnected = (socket, ms = CONNECT_TIMEOUT_MS) =>
  new Promise((resolve, reject) => {
    if (socket.connected) return resolve(socket)
    let lastError = null
    const onError = (err) => {
      lastError = err
    }
    const timer = setTimeout(() => {
      socket.off('connect', onConnect)
      socket.off('connect_error', onError)
      reject(
        new Error(
          `Socket.IO did not connect to ${socketOrigin()} (path ${SOCKETIO_PATH}) within ${ms} ms` +
            (lastError ? `: ${lastError.message}` : '')
        )
      )
    }, ms)
    const onConnect = () => {
      clearTimeout(timer)
      socket.off('connect_error', onError)
      resolve(socket)
    }
    socket.on('connect', onConnect)
    socket.on('connect_error', onError)
  })

/**
 * Make a client app for `transport` ('rest' or 'socketio').
 * Returns { app, transport, socket (socketio only), ready(): Promise, close() }.
 */
const makeClient = (transport) => {
  const app = feathers()
  if (transport === 'rest') {
    app.configure(rest(restBase()).fetch(fetch))
    return { app, transport, socket: null, ready: async () => app, close: () => {} }
  }
  if (transport === 'socketio') {
    const socket = io(socketOrigin(), {
      path: SOCKETIO_PATH,
      transports: ['websocket'],
      reconnectionDelay: 200,
      reconnectionDelayMax: 1000
    })
    app.configure(socketio(socket))
    return {
      app,
      transport,
      socket,
      ready: async () => {
        await waitConnected(socket)
        return app
      },
      close: () => socket.close()
    }
  }
  throw new Error(`Unknown TRANSPORT '${transport}' (expected 'rest' or 'socketio')`)
}

module.exports = {
  SERVER_URL,
  API_PATH,
  SOCKETIO_PATH,
  restBase,
  socketOrigin,
  waitConnected,
  makeClient
}
