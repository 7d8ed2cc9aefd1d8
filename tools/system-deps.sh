# Shared by tools/app.sh and tools/test.sh: install the Debian packages that are missing, with sudo if not root.
install_system_deps() {
  local missing=()
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
  # npm may come from elsewhere (nvm, nodesource): only ask Debian for it when there is none at all.
  local kept=()
  for pkg in ${missing[@]+"${missing[@]}"}; do
    [ "$pkg" = npm ] && command -v npm >/dev/null && continue
    kept+=("$pkg")
  done
  missing=(${kept[@]+"${kept[@]}"})
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  echo "Installing Debian packages: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}
