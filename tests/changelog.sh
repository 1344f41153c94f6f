#!/usr/bin/env bash
# The release notes lint and render (`make lint`):
#   - every fragment in changelogs/fragments/ and changelogs/changelog.yaml pass
#     antsibull-changelog's lint;
#   - `antsibull-changelog generate`, run on a copy, renders CHANGELOG.rst from
#     changelogs/changelog.yaml exactly as committed (so a release folded with
#     `antsibull-changelog release` was committed together with its CHANGELOG.rst).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export PATH=$repo/.venv/bin:$PATH
cd "$repo"

die() { echo "tests/changelog.sh: $*" >&2; exit 1; }

antsibull-changelog lint
antsibull-changelog lint-changelog-yaml changelogs/changelog.yaml
[ -f CHANGELOG.rst ] || die "CHANGELOG.rst is missing: run antsibull-changelog release (README, Release notes)"

tmp=$(mktemp -d /tmp/hv-changelog.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cp -r changelogs galaxy.yml CHANGELOG.rst "$tmp/"
(cd "$tmp" && antsibull-changelog generate >/dev/null)
diff -u CHANGELOG.rst "$tmp/CHANGELOG.rst" ||
  die "CHANGELOG.rst differs from what changelogs/changelog.yaml renders (above): run antsibull-changelog generate and commit it"
version=$(sed -n 's/^version: *//p' galaxy.yml)
grep -q "^v${version//./\\.}$" CHANGELOG.rst ||
  die "CHANGELOG.rst has no section for galaxy.yml's version $version"
echo "changelog: fragments and changelog.yaml lint, CHANGELOG.rst renders as committed (v$version)"
