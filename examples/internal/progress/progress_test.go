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
	assert.Nil(t, StartTicker(f, "x: ", 10))
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
