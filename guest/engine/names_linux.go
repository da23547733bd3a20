package engine

import (
	"crypto/rand"
	"math/big"
	"strconv"
)

// Docker-style generated names: adjective_surname.
var (
	adjectives = []string{
		"admiring", "adoring", "agitated", "amazing", "angry", "awesome", "blissful", "bold",
		"brave", "busy", "charming", "clever", "compassionate", "competent", "confident", "cool",
		"dazzling", "determined", "eager", "ecstatic", "elastic", "elegant", "epic", "exciting",
		"fervent", "festive", "focused", "friendly", "gallant", "gifted", "goofy", "gracious",
		"happy", "hopeful", "infallible", "inspiring", "jolly", "jovial", "keen", "kind",
		"laughing", "loving", "lucid", "magical", "modest", "musing", "mystifying", "nice",
		"nifty", "nostalgic", "optimistic", "peaceful", "pensive", "practical", "priceless", "quirky",
		"quizzical", "relaxed", "reverent", "romantic", "serene", "sharp", "silly", "sleepy",
		"stoic", "strange", "sweet", "tender", "thirsty", "trusting", "upbeat", "vibrant",
		"vigilant", "vigorous", "wizardly", "wonderful", "xenodochial", "youthful", "zealous", "zen",
	}
	surnames = []string{
		"albattani", "allen", "archimedes", "babbage", "banach", "bardeen", "bell", "bhabha",
		"booth", "borg", "bose", "brahmagupta", "cannon", "carson", "cerf", "chandrasekhar",
		"clarke", "curie", "darwin", "dijkstra", "einstein", "euclid", "euler", "fermat",
		"fermi", "feynman", "franklin", "galileo", "gauss", "goldberg", "goodall", "hamilton",
		"hawking", "heisenberg", "hopper", "hypatia", "johnson", "kepler", "khorana", "knuth",
		"lamarr", "lamport", "leakey", "lovelace", "lumiere", "mayer", "mccarthy", "meitner",
		"mirzakhani", "morse", "napier", "newton", "noether", "pascal", "pasteur", "perlman",
		"pike", "poincare", "ramanujan", "ride", "ritchie", "sammet", "shannon", "sinoussi",
		"swartz", "tesla", "thompson", "torvalds", "turing", "villani", "wiles", "williams",
		"wilson", "wing", "wozniak", "wright", "yalow", "yonath",
	}
)

func pick(list []string) string {
	n, err := rand.Int(rand.Reader, big.NewInt(int64(len(list))))
	if err != nil {
		panic(err) // crypto/rand does not fail on Linux
	}
	return list[n.Int64()]
}

// generateName returns an unused adjective_surname name. Call with e.mu
// held.
func (e *Engine) generateName() string {
	for i := 0; ; i++ {
		name := pick(adjectives) + "_" + pick(surnames)
		if i >= 10 {
			name += strconv.Itoa(i)
		}
		if _, ok := e.byName[name]; !ok {
			return name
		}
	}
}
