package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/stormguard/stormguard/dnsplan"
	"github.com/stormguard/stormguard/fence"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
)

// newEtcdClient returns a client of the run's etcd that logs nothing and
// reconnects within a fraction of a second after etcd restarts.
func newEtcdClient(endpoint string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 20 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 200 * time.Millisecond},
			MinConnectTimeout: time.Second,
		})},
	})
}

// plainStore is the plan store of the 2025 enactors: plans as JSON under
// one key per generation, Put refusing a generation not above the
// highest ever put, Delete unconditional (the clean-up decides alone what
// to delete, as in 2025).
type plainStore struct {
	c *clientv3.Client
}

const (
	planPrefix = "dnsfleet/plans/"
	highestKey = "dnsfleet/highest"
)

var _ dnsplan.Store = plainStore{}

func planKey(g fence.Token) string { return fmt.Sprintf("%s%020d", planPrefix, uint64(g)) }

func padGen(g fence.Token) string { return fmt.Sprintf("%020d", uint64(g)) }

func (s plainStore) Put(ctx context.Context, p dnsplan.Plan) error {
	if err := dnsplan.Validate(p, dnsplan.Limits{}); err != nil {
		return err
	}
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	cur, err := s.c.Get(ctx, highestKey)
	if err != nil {
		return err
	}
	cmp := clientv3.Compare(clientv3.CreateRevision(highestKey), "=", 0)
	if len(cur.Kvs) > 0 {
		cmp = clientv3.Compare(clientv3.Value(highestKey), "<", padGen(p.Generation))
	}
	resp, err := s.c.Txn(ctx).If(cmp).Then(
		clientv3.OpPut(planKey(p.Generation), string(b)),
		clientv3.OpPut(highestKey, padGen(p.Generation)),
	).Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		var have fence.Token
		if len(cur.Kvs) > 0 {
			n, _ := strconv.ParseUint(string(cur.Kvs[0].Value), 10, 64)
			have = fence.Token(n)
		}
		return &fence.StaleError{Op: fence.OpWriteIfNewer, Key: highestKey, Have: have, Want: p.Generation}
	}
	return nil
}

func decodePlan(v []byte) (dnsplan.Plan, error) {
	var p dnsplan.Plan
	err := json.Unmarshal(v, &p)
	return p, err
}

func (s plainStore) Get(ctx context.Context, g fence.Token) (dnsplan.Plan, error) {
	resp, err := s.c.Get(ctx, planKey(g))
	if err != nil {
		return dnsplan.Plan{}, err
	}
	if len(resp.Kvs) == 0 {
		return dnsplan.Plan{}, fmt.Errorf("%w: generation %d", dnsplan.ErrNotFound, uint64(g))
	}
	return decodePlan(resp.Kvs[0].Value)
}

func (s plainStore) Latest(ctx context.Context) (dnsplan.Plan, error) {
	resp, err := s.c.Get(ctx, planPrefix, clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil {
		return dnsplan.Plan{}, err
	}
	if len(resp.Kvs) == 0 {
		return dnsplan.Plan{}, fmt.Errorf("%w: the store holds no plan", dnsplan.ErrNotFound)
	}
	return decodePlan(resp.Kvs[0].Value)
}

func (s plainStore) Delete(ctx context.Context, g fence.Token) error {
	resp, err := s.c.Delete(ctx, planKey(g))
	if err != nil {
		return err
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%w: generation %d", dnsplan.ErrNotFound, uint64(g))
	}
	return nil
}

func (s plainStore) List(ctx context.Context) ([]fence.Token, error) {
	resp, err := s.c.Get(ctx, planPrefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
	if err != nil {
		return nil, err
	}
	gens := make([]fence.Token, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		n, err := strconv.ParseUint(strings.TrimPrefix(string(kv.Key), planPrefix), 10, 64)
		if err != nil {
			return nil, errors.New("dnsfleet: bad plan key " + string(kv.Key))
		}
		gens = append(gens, fence.Token(n))
	}
	return gens, nil
}
