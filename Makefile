# Developer entry points. `make demo` and `make test` are the two a newcomer needs.
.PHONY: deps test lint fmt demo build run tools cluster crds docker-build docker-push install-crds deploy helm-install

# The image `docker-build` makes, `docker-push` pushes and `helm-install` runs; always with a tag,
# e.g. make docker-push helm-install IMG=registry.example.com:5000/kprof:dev
IMG ?= kprof/kprof:0.1.0
KUBECONFIG ?= $(HOME)/.kube/config
# kubectl and helm: the ones scripts/install-tools puts in .tools/bin (make tools), or any on PATH.
KUBECTL ?= $(if $(wildcard .tools/bin/kubectl),.tools/bin/kubectl,kubectl)
HELM ?= $(if $(wildcard .tools/bin/helm),.tools/bin/helm,helm)
NAMESPACE ?= kprof-system
RELEASE ?= kprof
# More helm flags, e.g. HELM_ARGS='--set serviceAccount.annotations.eks\.amazonaws\.com/role-arn=arn:...'
HELM_ARGS ?=

deps:
	bash scripts/bootstrap

test:
	bash scripts/test

lint: deps
	.venv/bin/ruff check .
	.venv/bin/mypy

fmt: deps
	.venv/bin/ruff check --fix .
	.venv/bin/ruff format .

demo:
	bash scripts/demo

build: deps
	.venv/bin/python -m pip wheel --no-deps -w dist .

# The operator on this machine, against the cluster of $(KUBECONFIG).
run: deps
	.venv/bin/kprof run --kubeconfig $(KUBECONFIG)

tools:
	bash scripts/install-tools
	bash scripts/build-tools

# A real control plane (etcd, kube-apiserver, metrics-server) on this machine until Ctrl-C; it
# prints the KUBECONFIG to use (docs/OPERATOR.md).
cluster:
	bash scripts/dev-cluster

# Rewrites the committed CRD copies from schemas/profilingconfig.schema.json (a test checks them).
crds: deps
	.venv/bin/kprof crd > helm/kprof-operator/files/crd.yaml
	.venv/bin/kprof crd > kustomize/base/crd.yaml

docker-build:
	docker build -t $(IMG) .

docker-push:
	docker push $(IMG)

install-crds: deps
	.venv/bin/kprof crd | $(KUBECTL) apply -f -

# The operator with kustomize (kustomize/base; overlays in kustomize/overlays).
deploy:
	$(KUBECTL) apply -k kustomize/base

# IMG is split at its last ":" into the chart's image.repository and image.tag.
helm-install:
	img='$(IMG)'; $(HELM) upgrade --install $(RELEASE) helm/kprof-operator --namespace $(NAMESPACE) --create-namespace \
		--set image.repository="$${img%:*}" --set image.tag="$${img##*:}" $(HELM_ARGS)
