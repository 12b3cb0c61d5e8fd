#!/bin/sh
# Build the agent's OCI image from scratch, offline: an OCI image layout
# (oci-layout, index.json, blobs/sha256/) with one layer holding
# /podenv-agent and the iptables and nft tools it runs (below), tarred
# into one archive (`skopeo copy oci-archive:FILE …`,
# `podman load -i FILE`). Deterministic: same binary, same archive.
#
#   packaging/agent-image.sh AGENT_BINARY OUT.tar [NAME:TAG]
#
# NAME:TAG (default localhost/podenv-agent:latest; the Makefile passes
# AGENT_IMAGE, the default of the config's agent.image) goes into the index
# as org.opencontainers.image.ref.name and io.containerd.image.name, so that
# `ctr images import`, `kind load image-archive` and `podman load` give the
# image the name podenv asks Kubernetes for.
set -eu
agent=$1
out=$2
ref=${3:-localhost/podenv-agent:latest}
case ${ref##*/} in
*:*) version=${ref##*:} ;;
*) echo "agent-image.sh: $ref: expected NAME:TAG" >&2; exit 1 ;;
esac
case $(uname -m) in
x86_64) arch=amd64 ;;
aarch64) arch=arm64 ;;
*) arch=$(uname -m) ;;
esac

t=$(mktemp -d /tmp/podenv-oci.XXXXXX)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/root" "$t/layout/blobs/sha256"

# Deterministic tar: fixed order, times, owners.
dtar() {
	tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --format=posix \
		--pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime "$@"
}
sha() { sha256sum "$1" | cut -d' ' -f1; }
size() { stat -c %s "$1"; }
blob() { # FILE -> moves it into blobs/, prints its digest
	d=$(sha "$1")
	mv "$1" "$t/layout/blobs/sha256/$d"
	echo "$d"
}

# The layer: /podenv-agent, debug info stripped.
cp "$agent" "$t/root/podenv-agent"
strip --strip-debug "$t/root/podenv-agent" 2>/dev/null || true
chmod 0755 "$t/root/podenv-agent"
# The tools the agent runs to redirect incoming traffic (agent/redirect.c,
# docs/ARCHITECTURE.md): iptables (whichever variant iptables-restore is
# here, xtables-nft-multi on Debian 12, with the extensions its rules use)
# and nft, with their shared libraries and the loader, at the paths they
# have on this system. The agent is static; these are not. An image
# without them still serves files and connections; SUBSCRIBE then fails
# with "iptables-restore not found".
copy_file() { # PATH: copy it (symlinks followed) to the same path in the layer
	mkdir -p "$t/root$(dirname "$1")"
	[ -e "$t/root$1" ] || cp -L "$1" "$t/root$1"
}
copy_with_libs() { # PATH...: copy each with every library ldd names
	for f; do
		copy_file "$f"
		ldd "$f" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
			while read -r lib; do copy_file "$lib"; done
	done
}
tools=
if command -v iptables-restore >/dev/null && command -v nft >/dev/null; then
	xt=$(readlink -f "$(command -v iptables-restore)")
	xtdir=$(readlink -f "$(dirname "$(ldd "$xt" | awk '/libxtables/ {print $3}')")/xtables")
	copy_with_libs "$xt" "$(readlink -f "$(command -v nft)")"
	for ext in libxt_tcp libxt_mark libxt_comment libxt_REDIRECT libxt_standard; do
		copy_with_libs "$xtdir/$ext.so"
	done
	for n in iptables-restore iptables-save ip6tables-restore ip6tables-save; do
		ln -s "$(basename "$xt")" "$t/root/usr/sbin/$n"
	done
	[ -e "$t/root/usr/sbin/nft" ] || ln -s "$(readlink -f "$(command -v nft)")" "$t/root/usr/sbin/nft"
	tools=$(cd "$t/root" && find . -mindepth 1 -maxdepth 1 ! -name podenv-agent | sed 's|^\./||')
else
	echo "agent-image.sh: iptables or nft not installed here: the image cannot redirect" \
		"incoming traffic (make deps installs them)" >&2
fi
dtar -C "$t/root" -cf "$t/layer.tar" podenv-agent $tools
diff_id=$(sha "$t/layer.tar")
gzip -9n <"$t/layer.tar" >"$t/layer.tar.gz"
layer_size=$(size "$t/layer.tar.gz")
layer=$(blob "$t/layer.tar.gz")

cat >"$t/config.json" <<JSON
{"architecture":"$arch","os":"linux","config":{"Entrypoint":["/podenv-agent"],"Env":["PATH=/"],"Labels":{"org.opencontainers.image.title":"podenv-agent","org.opencontainers.image.version":"$version"}},"rootfs":{"type":"layers","diff_ids":["sha256:$diff_id"]},"history":[{"created_by":"packaging/agent-image.sh"}]}
JSON
config_size=$(size "$t/config.json")
config=$(blob "$t/config.json")

cat >"$t/manifest.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:$config","size":$config_size},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:$layer","size":$layer_size}],"annotations":{"org.opencontainers.image.title":"podenv-agent"}}
JSON
manifest_size=$(size "$t/manifest.json")
manifest=$(blob "$t/manifest.json")

cat >"$t/layout/index.json" <<JSON
{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:$manifest","size":$manifest_size,"platform":{"architecture":"$arch","os":"linux"},"annotations":{"org.opencontainers.image.ref.name":"$ref","io.containerd.image.name":"$ref"}}]}
JSON
echo '{"imageLayoutVersion":"1.0.0"}' >"$t/layout/oci-layout"

mkdir -p "$(dirname "$out")"
dtar -C "$t/layout" -cf "$out.tmp" oci-layout index.json blobs
mv "$out.tmp" "$out"
