package container

import (
	"io"
	"os"
)

type stdioSet struct {
	childIn, childOut, childErr *os.File
	parentIn                    *os.File
	parentOut, parentErr        *os.File
	devnull                     *os.File
}

func (s *stdioSet) open(devnull *os.File, stdin bool) error {
	s.devnull = devnull
	s.childIn = devnull
	if stdin {
		r, w, err := os.Pipe()
		if err != nil {
			return err
		}
		s.childIn, s.parentIn = r, w
	}
	r, w, err := os.Pipe()
	if err != nil {
		s.closeChild()
		s.closeParent()
		return err
	}
	s.parentOut, s.childOut = r, w
	r, w, err = os.Pipe()
	if err != nil {
		s.closeChild()
		s.closeParent()
		return err
	}
	s.parentErr, s.childErr = r, w
	return nil
}

func (s *stdioSet) child() []int {
	if s.childOut == nil {
		return nil
	}
	return []int{int(s.childIn.Fd()), int(s.childOut.Fd()), int(s.childErr.Fd())}
}

func (s *stdioSet) closeChild() {
	for _, f := range []*os.File{s.childIn, s.childOut, s.childErr} {
		if f != nil && f != s.devnull {
			f.Close()
		}
	}
	s.childIn, s.childOut, s.childErr = nil, nil, nil
}

func (s *stdioSet) closeParent() {
	for _, f := range []*os.File{s.parentIn, s.parentOut, s.parentErr} {
		if f != nil {
			f.Close()
		}
	}
}

func closeAll(cs ...io.Closer) {
	for _, c := range cs {
		if c != nil && !isNilFile(c) {
			c.Close()
		}
	}
}

func isNilFile(c io.Closer) bool {
	f, ok := c.(*os.File)
	return ok && f == nil
}
