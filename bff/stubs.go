package bff

import (
	"net/http"
	"sync"
)

type remoteKeys struct {
	url    string
	client *http.Client
}
type jtiCache struct{ mu sync.Mutex }

func newJTICache(int) *jtiCache { return &jtiCache{} }

type flight struct{}

func (h *Handler) login(w http.ResponseWriter, r *http.Request)             { http.NotFound(w, r) }
func (h *Handler) callback(w http.ResponseWriter, r *http.Request)          { http.NotFound(w, r) }
func (h *Handler) logout(w http.ResponseWriter, r *http.Request)            { http.NotFound(w, r) }
func (h *Handler) user(w http.ResponseWriter, r *http.Request)              { http.NotFound(w, r) }
func (h *Handler) session(w http.ResponseWriter, r *http.Request)           { http.NotFound(w, r) }
func (h *Handler) backchannelLogout(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }
func (h *Handler) proxy(w http.ResponseWriter, r *http.Request, a *API)     { http.NotFound(w, r) }
