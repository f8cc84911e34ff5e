package devices

// newTestRegistry returns a registry whose budget holds n devices of one
// metric (rd's), and no more.
func newTestRegistry(n int) *Registry {
	return NewRegistry(int64(n) * (DeviceBytes + SeriesBytes + 32))
}
