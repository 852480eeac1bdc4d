'use strict'
// Swagger UI on the document the page names in data-openapi-url (kdk_app/openapi/routes.py).
// A file of its own: the page's Content-Security-Policy allows no inline script.
// The leading semicolon: without it, the directive above would be called as a function.
;(function () {
  var root = document.getElementById('swagger-ui')
  window.ui = window.SwaggerUIBundle({
    url: root.getAttribute('data-openapi-url'),
    domNode: root,
    deepLinking: true,
    // Never send the document to validator.swagger.io (and no request leaves this origin).
    validatorUrl: null,
    presets: [window.SwaggerUIBundle.presets.apis],
    layout: 'BaseLayout'
  })
})()
