package actors

// ActorMessage completes countingObserver as an Observer; handling times are not asserted here.
func (o *countingObserver) ActorMessage(string, float64) {}
