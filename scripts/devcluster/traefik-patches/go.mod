// Not built on its own: build.sh copies these files into a copy of Traefik's module (see
// README.md here). This go.mod only keeps them out of the repository's module.
module devcluster/traefik-patches

go 1.24.0
