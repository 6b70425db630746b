"""The HTTP edge besides GraphQL: staff and customer sign-in endpoints, the OAuth2 token
endpoint, driver GPS pings, and the middleware that names the company of each request."""
