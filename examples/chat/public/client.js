'use strict'
// The chat client, written the way the Feathers chat guide writes its own: the official
// @feathersjs/client browser build over the Socket.IO client the server serves, with the
// token kept in localStorage so a reload logs in again. User text only ever goes through
// textContent, never into HTML.
;(function () {
  const socket = io() // default transports: long-polling first, then the upgrade to WebSocket
  const client = feathers()
  client.configure(feathers.socketio(socket))
  client.configure(feathers.authentication())
  window.chat = { client, socket } // for the console and the browser test

  const $ = (id) => document.getElementById(id)
  const messages = client.service('messages')
  const users = client.service('users')
  let showing = false

  function element (tag, className, text) {
    const node = document.createElement(tag)
    if (className) node.className = className
    if (text !== undefined) node.textContent = text
    return node
  }

  function avatar (user) {
    const img = element('img', 'avatar')
    img.alt = ''
    img.src = (user && user.avatar) || ''
    return img
  }

  const shown = (list, id) => $(list).querySelector(`[data-id="${CSS.escape(String(id))}"]`)

  function addUser (user) {
    if (!showing || shown('users', user._id)) return
    const item = element('li', 'user')
    item.dataset.id = user._id
    item.append(avatar(user), element('span', 'email', user.email))
    $('users').append(item)
    $('user-count').textContent = $('users').children.length
  }

  function addMessage (message) {
    if (!showing || shown('messages', message._id)) return // an event during the first find
    const user = message.user || {}
    const item = element('li', 'message')
    item.dataset.id = message._id
    item.dataset.createdAt = message.createdAt
    const meta = element('div', 'meta')
    meta.append(element('span', 'email', user.email || 'someone'),
      element('time', 'sent', new Date(message.createdAt).toLocaleString()))
    const body = element('div', 'body')
    body.append(meta, element('p', 'text', message.text))
    item.append(avatar(user), body)
    $('messages').append(item)
    item.scrollIntoView({ block: 'end' })
  }

  function showLogin (error) {
    showing = false
    document.body.dataset.user = ''
    $('chat').hidden = true
    $('login').hidden = false
    $('login-error').textContent = error ? error.message : ''
  }

  async function showChat (user) {
    showing = true
    document.body.dataset.user = user.email
    $('me').textContent = user.email
    $('login').hidden = true
    $('chat').hidden = false
    $('messages').replaceChildren()
    $('messages').dataset.state = 'loading'
    $('users').replaceChildren()
    // The newest 25 messages, newest first; shown oldest to newest, as a conversation reads.
    const page = await messages.find({ query: { $sort: { createdAt: -1 }, $limit: 25 } })
    page.data.reverse().forEach(addMessage)
    $('messages').dataset.state = 'ready'
    const found = await users.find()
    found.data.forEach(addUser)
  }

  // No credentials: log in again with the stored token (after a reload).
  async function login (credentials) {
    try {
      const result = credentials
        ? await client.authenticate({ strategy: 'local', ...credentials })
        : await client.reAuthenticate()
      await showChat(result.user)
    } catch (error) {
      showLogin(credentials ? error : null)
    }
  }

  const credentials = () => ({ email: $('email').value.trim(), password: $('password').value })

  $('login-form').addEventListener('submit', (event) => {
    event.preventDefault()
    login(credentials())
  })
  $('signup-button').addEventListener('click', async () => {
    try {
      await users.create(credentials())
      await login(credentials())
    } catch (error) {
      showLogin(error)
    }
  })
  $('logout-button').addEventListener('click', async () => {
    await client.logout()
    showLogin()
  })
  $('send-message').addEventListener('submit', async (event) => {
    event.preventDefault()
    const input = $('message-text')
    try {
      await messages.create({ text: input.value })
      input.value = ''
    } catch (error) {
      input.setCustomValidity(error.message)
      input.reportValidity()
    }
  })
  $('message-text').addEventListener('input', (event) => event.target.setCustomValidity(''))

  // Everyone logged in gets every event (the server's channels): new messages, new users.
  messages.on('created', addMessage)
  users.on('created', addUser)

  login()
})()
