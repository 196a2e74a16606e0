package recipient

// maxLimitedPaths bounds the reply rate limiter's memory: past it, the
// paths whose bucket refilled are forgotten first.
const maxLimitedPaths = 4096
