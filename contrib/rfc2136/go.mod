module github.com/stormguard/stormguard/contrib/rfc2136

go 1.25.0

replace github.com/stormguard/stormguard => ../..

require (
	github.com/miekg/dns v1.1.72
	github.com/stormguard/stormguard v0.1.0
	github.com/stretchr/testify v1.12.1
)

require (
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/mod v0.31.0 // indirect
	golang.org/x/net v0.48.0 // indirect
	golang.org/x/sync v0.19.0 // indirect
	golang.org/x/sys v0.39.0 // indirect
	golang.org/x/tools v0.40.0 // indirect
	pgregory.net/rapid v1.3.0
)
