package broadcast

import (
	"maps"
	"slices"
	"sync"
)

// Presence counts who is present in which topic. A member joined n times
// is present until it has left n times. The zero Presence is not usable;
// create one with NewPresence. All methods are safe for concurrent use.
//
// The Hub keeps one for its in-process presence; a cross-node broker keeps
// one for its own node's members and publishes them to the other nodes.
type Presence struct {
	onChange func(topic string)

	mu     sync.Mutex
	topics map[string]map[string]int // topic → member → joins
}

// NewPresence returns an empty presence. onChange, if not nil, is called
// after every join or leave that changes a topic's member set (not when a
// member joins a second time), outside the presence's lock, with the
// topic's name. It must not block.
func NewPresence(onChange func(topic string)) *Presence {
	return &Presence{onChange: onChange, topics: map[string]map[string]int{}}
}

// Join records member as present in topic until the returned leave
// function is called. Calling leave again does nothing.
func (p *Presence) Join(topic, member string) (leave func()) {
	p.mu.Lock()
	ms := p.topics[topic]
	if ms == nil {
		ms = map[string]int{}
		p.topics[topic] = ms
	}
	ms[member]++
	changed := ms[member] == 1
	p.mu.Unlock()
	if changed && p.onChange != nil {
		p.onChange(topic)
	}
	return sync.OnceFunc(func() { p.leave(topic, member) })
}

func (p *Presence) leave(topic, member string) {
	p.mu.Lock()
	ms := p.topics[topic]
	ms[member]--
	changed := ms[member] == 0
	if changed {
		delete(ms, member)
		if len(ms) == 0 {
			delete(p.topics, topic)
		}
	}
	p.mu.Unlock()
	if changed && p.onChange != nil {
		p.onChange(topic)
	}
}

// Members returns who is present in topic, sorted, each once.
func (p *Presence) Members(topic string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Sorted(maps.Keys(p.topics[topic]))
}

// Topics returns every topic with at least one member, and its members,
// each list sorted.
func (p *Presence) Topics() map[string][]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	all := make(map[string][]string, len(p.topics))
	for t, ms := range p.topics {
		all[t] = slices.Sorted(maps.Keys(ms))
	}
	return all
}
