module github.com/stormguard/stormguard

go 1.25.0

require (
	github.com/stretchr/testify v1.12.1 // indirect
	golang.org/x/time v0.15.0 // indirect
	pgregory.net/rapid v1.3.0 // indirect
)
