module github.com/wsnursery/wsnursery

go 1.26.0

require (
	github.com/gorilla/websocket v1.5.3
	go.uber.org/goleak v1.3.0
	golang.org/x/sync v0.24.0
)
