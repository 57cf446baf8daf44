package progress

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNotATerminal(t *testing.T) {
	var buf bytes.Buffer
	assert.False(t, Terminal(&buf))
	assert.False(t, Terminal((*os.File)(nil)))
	f, err := os.CreateTemp(t.TempDir(), "stderr")
	require.NoError(t, err)
	defer f.Close()
	assert.False(t, Terminal(f), "a regular file is not a terminal")
	// A short run prints nothing on a file: lines start at LineAfter.
	p := StartTicker(f, "x: ", 10)
	require.NotNil(t, p)
	p.Stop()
	assert.Nil(t, StartTicker(nil, "x: ", 10))
	b := NewBar(f, true)
	b.Update(0, 0.5)
	b.Done()
	var nilBar *Bar
	nilBar.Update(0, 1)
	nilBar.Done()
	var nilTicker *Ticker
	nilTicker.Phase("p")
	nilTicker.Stop()
	st, err := f.Stat()
	require.NoError(t, err)
	assert.Zero(t, st.Size())
}

// TestBarLinesWhenNotATerminal: on a pipe or a file the bar prints a plain
// line at every tenth done, from LineAfter on, and nothing when off.
func TestBarLinesWhenNotATerminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf, off bytes.Buffer
		b := NewBar(&buf, true)
		quiet := NewBar(&off, false)
		b.Update(0, 0.5)
		b.Update(1, 0.5)
		quiet.Update(0, 1)
		assert.Empty(t, buf.String(), "nothing before LineAfter")
		time.Sleep(LineAfter)
		b.Update(0, 0.6) // mean 0.55: the tenth is 5
		assert.Equal(t, "simulating: 50% done after 5s\n", buf.String())
		b.Update(1, 0.55) // mean 0.575: still the fifth tenth
		assert.Equal(t, "simulating: 50% done after 5s\n", buf.String())
		time.Sleep(time.Second)
		b.Update(1, 1) // mean 0.8
		b.Done()
		assert.Equal(t, "simulating: 50% done after 5s\nsimulating: 80% done after 6s\n", buf.String())
		assert.Empty(t, off.String())
	})
}

// TestTickerLinesWhenNotATerminal: on a pipe or a file the ticker prints a
// plain line every LineEvery from LineAfter on, and Stop blanks nothing.
func TestTickerLinesWhenNotATerminal(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		p := StartTicker(&buf, "demo: simulating ", 20)
		p.Phase("one")
		time.Sleep(LineAfter - Refresh/2)
		synctest.Wait()
		p.mu.Lock()
		assert.Empty(t, buf.String(), "nothing before LineAfter")
		p.mu.Unlock()
		time.Sleep(Refresh)
		synctest.Wait()
		p.Phase("two")
		time.Sleep(LineEvery)
		synctest.Wait()
		p.Stop()
		assert.Equal(t, "demo: simulating one… 5s\ndemo: simulating two… 15s\n", buf.String())
	})
}

func TestBarDrawsAfterTwoSeconds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		b := &Bar{w: &buf, on: true, start: time.Now()}
		b.Update(0, 0.5)
		assert.Empty(t, buf.String(), "nothing before After")
		time.Sleep(After)
		b.Update(1, 0.5)
		b.Update(2, 1) // ignored
		assert.Equal(t, "\rsimulating ["+strings.Repeat("#", 20)+strings.Repeat(" ", 20)+"]  50%", buf.String())
		buf.Reset()
		b.Done()
		assert.Equal(t, "\r"+strings.Repeat(" ", 64)+"\r", buf.String())
	})
}

func TestTickerDrawsPhase(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf bytes.Buffer
		p := newTicker(&buf, "demo: simulating ", 20)
		go p.loop()
		p.Phase("one")
		time.Sleep(After - Refresh/2)
		synctest.Wait()
		p.mu.Lock()
		assert.Empty(t, buf.String(), "nothing before After")
		p.mu.Unlock()
		time.Sleep(Refresh)
		synctest.Wait()
		p.Stop()
		assert.Equal(t, "\rdemo: simulating one…   2s \r"+strings.Repeat(" ", 20)+"\r", buf.String())
	})
}
