package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"
)

// Route is one registered method and path template, e.g. GET
// /v1/environments/:env/artifacts/*rest.
type Route struct {
	Method string
	Path   string
}

// RoutesOf lists the routes of a handler built by API.Handler, read from the
// router itself, so tests that walk every route cannot miss one added later.
func RoutesOf(h http.Handler) []Route {
	engine, ok := h.(*gin.Engine)
	if !ok {
		return nil
	}
	var out []Route
	for _, r := range engine.Routes() {
		out = append(out, Route{Method: r.Method, Path: r.Path})
	}
	return out
}
