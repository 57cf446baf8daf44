module github.com/stormguard/stormguard/contrib/grpc

go 1.25.0

require github.com/stormguard/stormguard v0.1.0

replace github.com/stormguard/stormguard => ../..
