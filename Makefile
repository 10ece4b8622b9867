# securejingle build and test entry points. `make check` is what CI runs.

GO        ?= go
PKGS      ?= ./...
# Debian packages the integration tests drive for real.
DEB_TOOLS := ssh-agent:openssh-client ssh-keygen:openssh-client ssh-add:openssh-client \
             gpg:gnupg openssl:openssl prosody:prosody prosodyctl:prosody \
             turnserver:coturn chromium:chromium opusenc:opus-tools \
             go-sendxmpp:go-sendxmpp profanity:profanity tmux:tmux
# Python modules (import name:Debian package) for Debian's /usr/bin/python3.
DEB_PYMODS := slixmpp:python3-slixmpp
export SECUREJINGLE_INTEGRATION := 1

.PHONY: all build check deps fmt-check vet test race bench vectors fuzz-smoke

all: build

build:
	$(GO) build $(PKGS)

# deps installs the Debian packages whose programs the integration tests use,
# only when a program is missing.
deps:
	@missing=""; for pair in $(DEB_TOOLS); do \
	  cmd=$${pair%%:*}; pkg=$${pair#*:}; \
	  command -v $$cmd >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	for pair in $(DEB_PYMODS); do \
	  mod=$${pair%%:*}; pkg=$${pair#*:}; \
	  /usr/bin/python3 -c "import $$mod" >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$(echo $$missing | tr ' ' '\n' | sort -u); \
	  service prosody stop >/dev/null 2>&1 || true; \
	  service coturn stop >/dev/null 2>&1 || true; \
	fi

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(PKGS)

test:
	$(GO) test -count=1 -timeout 20m $(PKGS)

check: deps build fmt-check vet test

# race runs every test under the race detector (not part of check: slower).
race: deps
	$(GO) test -race -count=1 -timeout 40m $(PKGS)

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# vectors regenerates testdata/e2e with the generator in e2e/vectorgen_test.go.
vectors:
	$(GO) test ./e2e -run '^TestGenerateVectors$$' -count=1 -update

# fuzz-smoke runs every fuzz target for FUZZTIME each (not part of check:
# with 30 s per target it takes a while). It runs all targets, lists the
# ones that failed and fails if any did; a failing input is saved under the
# package's testdata/fuzz/<target>/ by go test. FUZZPKGS narrows the run;
# FUZZFLAGS adds flags (e.g. -parallel=1 on a shared machine).
FUZZTIME ?= 30s
FUZZPKGS ?= ./...
FUZZFLAGS ?=
fuzz-smoke:
	@failed=""; n=0; \
	for pkg in $$($(GO) list $(FUZZPKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    n=$$((n+1)); echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 10s $(FUZZFLAGS) $$pkg || failed="$$failed $$pkg.$$f"; \
	  done; \
	done; \
	echo "fuzz-smoke: $$n targets, $(FUZZTIME) each"; \
	if [ -n "$$failed" ]; then echo "fuzz-smoke: FAILED:$$failed"; exit 1; fi
