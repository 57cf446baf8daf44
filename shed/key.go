package shed

import (
	"fmt"
	"reflect"
)

// keysNeedCheck reports whether a value of type K can break a map at run
// time: one holding an interface may hold an uncomparable value (a slice,
// a map, a func), whose hashing panics, and one holding a float may be
// NaN, which is never equal to itself, so that every lookup of it misses
// and a slot taken under it could never be released. Keys of other types
// are not checked, so that checking costs them nothing.
func keysNeedCheck[K comparable]() bool { return mayBreakMap(reflect.TypeFor[K]()) }

func mayBreakMap(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Interface, reflect.Float32, reflect.Float64, reflect.Complex64, reflect.Complex128:
		return true
	case reflect.Array:
		return mayBreakMap(t.Elem())
	case reflect.Struct:
		for i := range t.NumField() {
			if mayBreakMap(t.Field(i).Type) {
				return true
			}
		}
	}
	return false
}

// checkKey returns an error matching ErrInvalidArgument if key cannot be a
// map key that is found again: it is not comparable, or not equal to
// itself (it is or holds a NaN).
func checkKey[K comparable](key K) (err error) {
	defer func() {
		if recover() != nil {
			err = fmt.Errorf("%w: key %v of type %T is not comparable", ErrInvalidArgument, key, key)
		}
	}()
	if key != key {
		return fmt.Errorf("%w: key %v is not equal to itself (NaN), so it could never be found again", ErrInvalidArgument, key)
	}
	return nil
}
