module github.com/stormguard/stormguard/examples

go 1.25.0

require (
	github.com/stormguard/stormguard v0.1.0
	github.com/stretchr/testify v1.12.1
	gonum.org/v1/plot v0.17.0
)

require (
	codeberg.org/go-fonts/liberation v0.5.0 // indirect
	codeberg.org/go-latex/latex v0.2.0 // indirect
	codeberg.org/go-pdf/fpdf v0.11.1 // indirect
	git.sr.ht/~sbinet/gg v0.7.0 // indirect
	github.com/ajstarks/svgo v0.0.0-20211024235047-1546f124cd8b // indirect
	github.com/golang/freetype v0.0.0-20170609003504-e2365dfdc4a0 // indirect
	github.com/miekg/dns v1.1.72
	github.com/stormguard/stormguard/contrib/etcd v0.1.0
	github.com/stormguard/stormguard/contrib/rfc2136 v0.1.0
	go.etcd.io/etcd/client/v3 v3.6.14
	go.uber.org/zap v1.27.0
	go.yaml.in/yaml/v3 v3.0.6 // indirect
	golang.org/x/image v0.30.0 // indirect
	golang.org/x/text v0.28.0 // indirect
	golang.org/x/time v0.15.0 // indirect
	google.golang.org/grpc v1.82.1
)

replace github.com/stormguard/stormguard => ../

replace github.com/stormguard/stormguard/contrib/etcd => ../contrib/etcd

replace github.com/stormguard/stormguard/contrib/rfc2136 => ../contrib/rfc2136
