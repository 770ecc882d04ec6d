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
# Where cargo put the release build (scripts/build.sh honours CARGO_TARGET_DIR).
RELEASE := $(or $(CARGO_TARGET_DIR),target)/release

install: build
	install -d $(DESTDIR)
	for p in $(PLUGINS); do install -m 0755 $(RELEASE)/$$p $(DESTDIR)/$$p; done
