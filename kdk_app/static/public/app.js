/*
 * kdk-app browser page: lists one service (default `messages`), creates records, and follows
 * the service's real-time events.
 *
 * All server traffic goes through the official clients loaded before this file:
 * window.io (socket.io-client) and window.feathers (@feathersjs/client, which bundles
 * feathers.socketio and feathers.authentication). No protocol code lives here.
 *
 * Layout: createClient() (connection), createMessageList() (rendering, DOM only),
 * bindComposer() (the form), startMessages() (loading + events), bindAuth() (register, log in
 * and out with feathers.authentication: the token is kept in localStorage and re-used after a
 * reload), main() (wiring). `messages` is open to everyone, so the list does not wait for a login.
 */
(function () {
  'use strict'

  const OBJECT_ID = /^[0-9a-f]{24}$/

  function readConfig (body) {
    return {
      service: body.dataset.service || 'messages',
      socketioPath: body.dataset.socketioPath || '/socket.io',
      pageSize: Number(body.dataset.pageSize) || 25,
      auth: body.dataset.auth === 'on'
    }
  }

  // --- connection -------------------------------------------------------------------------
  function createClient (config) {
    // Same origin; default transports (HTTP long-polling, then upgrade to WebSocket).
    const socket = window.io({ path: config.socketioPath })
    const client = window.feathers()
    client.configure(window.feathers.socketio(socket))
    if (config.auth) client.configure(window.feathers.authentication())
    return { client, socket }
  }

  function bindStatus (socket, element) {
    const show = (state, text) => {
      element.dataset.state = state
      element.textContent = text
    }
    socket.on('connect', () => show('live', 'Live'))
    socket.on('disconnect', () => show('offline', 'Offline, reconnecting…'))
    socket.on('connect_error', () => show('offline', 'Cannot reach the server, retrying…'))
  }

  // --- rendering (the only code that touches the list; text always via textContent) -------
  function createdAt (id) {
    // A MongoDB ObjectId starts with its creation time in seconds.
    return OBJECT_ID.test(id) ? new Date(parseInt(id.slice(0, 8), 16) * 1000) : null
  }

  function createMessageList ({ list, summary, template, pageSize, onRemove }) {
    const items = new Map() // _id -> <li>, newest first in the DOM
    const gone = new Set() // ids already counted as removed (the event and our ack both arrive)
    let total = 0

    function fill (li, message) {
      li.dataset.id = message._id
      li.querySelector('.text').textContent = message.text == null ? '' : String(message.text)
      const time = li.querySelector('time')
      const date = createdAt(String(message._id))
      time.textContent = date ? date.toLocaleString() : ''
      time.dateTime = date ? date.toISOString() : ''
      const tag = li.querySelector('.tag')
      tag.hidden = !message.tag
      tag.textContent = message.tag ? '#' + message.tag : ''
      const number = li.querySelector('.number')
      number.hidden = message.n == null
      number.textContent = message.n == null ? '' : 'n = ' + message.n
    }

    function build (message) {
      const li = template.content.firstElementChild.cloneNode(true)
      li.querySelector('.remove').addEventListener('click', () => onRemove(li.dataset.id))
      fill(li, message)
      return li
    }

    function updateSummary () {
      summary.textContent = total === 0
        ? 'No messages yet.'
        : `Showing ${items.size} of ${total} message${total === 1 ? '' : 's'}, newest first.`
    }

    return {
      size: () => items.size,
      total: () => total,
      reset (page) {
        items.clear()
        list.replaceChildren(...page.data.map((message) => {
          const li = build(message)
          items.set(String(message._id), li)
          return li
        }))
        total = page.total
        list.dataset.state = 'ready'
        updateSummary()
      },
      failed (error) {
        list.dataset.state = 'error'
        summary.textContent = 'Could not load messages: ' + error.message
      },
      created (message) {
        const id = String(message._id)
        if (items.has(id)) return fill(items.get(id), message)
        const li = build(message)
        items.set(id, li)
        list.prepend(li)
        total += 1
        // Keep one page: drop the oldest shown.
        while (items.size > pageSize) {
          const last = list.lastElementChild
          items.delete(last.dataset.id)
          last.remove()
        }
        updateSummary()
      },
      changed (message) {
        const li = items.get(String(message._id))
        if (li) fill(li, message)
      },
      removed (message) {
        const id = String(message._id)
        if (gone.has(id)) return false
        gone.add(id)
        const li = items.get(id)
        if (li) {
          li.remove()
          items.delete(id)
        }
        total = Math.max(0, total - 1)
        updateSummary()
        return Boolean(li)
      }
    }
  }

  // --- the form ---------------------------------------------------------------------------
  function bindComposer ({ form, text, tag, error }, create) {
    const button = form.querySelector('button[type=submit]')
    form.addEventListener('submit', async (event) => {
      event.preventDefault()
      const data = { text: text.value.trim() }
      if (tag.value.trim()) data.tag = tag.value.trim()
      if (!data.text) return showError(error, 'Write something first.')
      button.disabled = true
      try {
        await create(data)
        form.reset()
        showError(error, '')
      } catch (e) {
        showError(error, e.message || String(e))
      } finally {
        button.disabled = false
        text.focus()
      }
    })
  }

  function showError (element, message) {
    element.textContent = message
    element.hidden = !message
  }

  // --- data -------------------------------------------------------------------------------
  function startMessages ({ client, socket }, config, view, error) {
    const service = client.service(config.service)
    const query = { $sort: { _id: -1 }, $limit: config.pageSize }
    const load = () => service.find({ query }).then(
      (page) => view.list.reset(Array.isArray(page) ? { data: page, total: page.length } : page),
      (e) => view.list.failed(e)
    )

    service.on('created', (message) => view.list.created(message))
    service.on('updated', (message) => view.list.changed(message))
    service.on('patched', (message) => view.list.changed(message))
    service.on('removed', (message) => {
      // Refill the page from the server when a shown message goes and older ones exist.
      if (view.list.removed(message) && view.list.total() > view.list.size()) load()
    })
    // (Re)load on every connect: events missed while offline are not replayed.
    socket.on('connect', load)
    if (socket.connected) load()

    return {
      create: (data) => service.create(data).then((message) => {
        view.list.created(message) // the `created` event may come first or not at all
        return message
      }),
      remove: (id) => service.remove(id).then(
        (message) => view.list.removed(message) && view.list.total() > view.list.size() && load(),
        (e) => showError(error, e.message || String(e))
      )
    }
  }

  // --- account ----------------------------------------------------------------------------
  function bindAuth (client, elements) {
    const { section, form, email, password, error, session, sessionEmail, register, logout } = elements
    const show = (user) => {
      form.hidden = Boolean(user)
      session.hidden = !user
      sessionEmail.textContent = user ? user.email : ''
      document.body.dataset.user = user ? user.email : ''
    }
    const run = async (action) => {
      for (const button of section.querySelectorAll('button')) button.disabled = true
      try {
        await action()
        showError(error, '')
      } catch (e) {
        showError(error, e.message || String(e))
      } finally {
        for (const button of section.querySelectorAll('button')) button.disabled = false
      }
    }
    const login = async () => {
      const result = await client.authenticate({ strategy: 'local', email: email.value.trim(), password: password.value })
      password.value = ''
      show(result.user)
    }
    form.addEventListener('submit', (event) => {
      event.preventDefault()
      run(login)
    })
    register.addEventListener('click', () => {
      if (!form.reportValidity()) return
      run(async () => {
        await client.service('users').create({ email: email.value.trim(), password: password.value })
        await login()
      })
    })
    logout.addEventListener('click', () => run(async () => {
      await client.logout()
      show(null)
    }))
    section.hidden = false
    show(null)
    // After a reload: log in again with the stored token, silently.
    client.reAuthenticate().then((result) => show(result.user), () => show(null))
  }

  function main () {
    const config = readConfig(document.body)
    const connection = createClient(config)
    bindStatus(connection.socket, document.getElementById('status'))
    const error = document.getElementById('composer-error')
    let messages = null
    const view = {
      list: createMessageList({
        list: document.getElementById('messages'),
        summary: document.getElementById('summary'),
        template: document.getElementById('message-template'),
        pageSize: config.pageSize,
        onRemove: (id) => messages && messages.remove(id)
      })
    }
    messages = startMessages(connection, config, view, error)
    bindComposer({
      form: document.getElementById('composer'),
      text: document.getElementById('composer-text'),
      tag: document.getElementById('composer-tag'),
      error
    }, messages.create)
    if (config.auth) {
      const byId = (id) => document.getElementById(id)
      bindAuth(connection.client, {
        section: byId('auth'),
        form: byId('login'),
        email: byId('login-email'),
        password: byId('login-password'),
        error: byId('login-error'),
        session: byId('session'),
        sessionEmail: byId('session-email'),
        register: byId('register-button'),
        logout: byId('logout-button')
      })
    }
    // For the browser console and for features added later (e.g. the login form).
    window.kdkPage = { config, client: connection.client, socket: connection.socket }
  }

  main()
})()
