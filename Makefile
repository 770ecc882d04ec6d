# The two commands a new user runs (as root): `make demo` and `make test`.
.PHONY: demo test build install

demo:
	scripts/demo.sh

test:
	scripts/test.sh

build:
	scripts/build.sh

PLUGINS := portmap bandwidth tuning loopback noop
DESTDIR ?= /opt/cni/bin

install: build
	install -d $(DESTDIR)
	for p in $(PLUGINS); do install -m 0755 target/release/$$p $(DESTDIR)/$$p; done
