module github.com/stormguard/stormguard/examples

go 1.25.0

require (
	github.com/stormguard/stormguard v0.0.0
	github.com/stretchr/testify v1.12.1
)

require (
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/time v0.15.0 // indirect
)

replace github.com/stormguard/stormguard => ../
