// Command controller-runtime is the reference operator of `npm run bench:operator`:
// the same controller as test/bench/operator/main.ts, written the usual way with
// sigs.k8s.io/controller-runtime, so the benchmark can print the framework's
// numbers next to the numbers of the library it is the TypeScript counterpart of.
//
// What is kept equivalent, and why each matters to the numbers:
//   - The kind: BenchItem (bench.db-backup-operator.dev/v1, namespaced, status
//     subresource), from the CRD the harness installs; the Go types mirror its
//     schema (spec.value; status.value and status.observedGeneration).
//   - The reconcile: read the object from the shared informer cache; when
//     status.value and status.observedGeneration already match spec.value and
//     metadata.generation, do nothing; else one merge patch of the status
//     subresource holding only the changed fields, without a resourceVersion
//     precondition. That is what Status.patchStatus sends on our side.
//   - The watch: one cluster-wide informer on BenchItem with the generation-changed
//     predicate, so a controller's own status write does not wake it up again.
//   - The workers: --concurrency (MaxConcurrentReconciles), the value the harness
//     also gives ours.
//   - The client: the same --qps and --burst token bucket as ours. controller-runtime
//     would otherwise switch client-side rate limiting off (GetConfig sets QPS -1).
//   - No leader election on either side; logs as JSON at warning level, as ours.
//   - Readiness: /readyz passes once the BenchItem informer has listed and synced;
//     ours passes once its caches have synced. The harness additionally waits for
//     controller_runtime_max_concurrent_reconciles{controller="benchitem"}, which
//     both expose, so "ready" means synced and the controller started on both.
//   - Metrics on /metrics: controller-runtime's own registry, which already has
//     rest_client_requests_total and controller_runtime_reconcile_total, the two
//     counters the harness reads from both operators.
//
// Everything else is controller-runtime's default (its priority work queue, its
// cache, its REST mapper), exactly as a user of the library would get it: no
// tuning or extra caching on this side, as none on ours.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"

	"go.uber.org/zap/zapcore"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

var groupVersion = schema.GroupVersion{Group: "bench.db-backup-operator.dev", Version: "v1"}

type BenchItemSpec struct {
	Value int64 `json:"value"`
}

// Pointers with omitempty: an unwritten status has neither field, as on our side.
type BenchItemStatus struct {
	ObservedGeneration *int64 `json:"observedGeneration,omitempty"`
	Value              *int64 `json:"value,omitempty"`
}

type BenchItem struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`
	Spec              BenchItemSpec   `json:"spec"`
	Status            BenchItemStatus `json:"status,omitzero"`
}

type BenchItemList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BenchItem `json:"items"`
}

// Written by hand rather than generated: controller-gen would be one more tool to
// build for two small types.
func (in *BenchItem) DeepCopy() *BenchItem {
	out := new(BenchItem)
	out.TypeMeta = in.TypeMeta
	in.ObjectMeta.DeepCopyInto(&out.ObjectMeta)
	out.Spec = in.Spec
	if in.Status.ObservedGeneration != nil {
		v := *in.Status.ObservedGeneration
		out.Status.ObservedGeneration = &v
	}
	if in.Status.Value != nil {
		v := *in.Status.Value
		out.Status.Value = &v
	}
	return out
}

func (in *BenchItem) DeepCopyObject() runtime.Object { return in.DeepCopy() }

func (in *BenchItemList) DeepCopyObject() runtime.Object {
	out := new(BenchItemList)
	out.TypeMeta = in.TypeMeta
	in.ListMeta.DeepCopyInto(&out.ListMeta)
	if in.Items != nil {
		out.Items = make([]BenchItem, len(in.Items))
		for i := range in.Items {
			out.Items[i] = *in.Items[i].DeepCopy()
		}
	}
	return out
}

func isWritten(item *BenchItem) bool {
	return item.Status.Value != nil && *item.Status.Value == item.Spec.Value &&
		item.Status.ObservedGeneration != nil && *item.Status.ObservedGeneration == item.Generation
}

type reconciler struct {
	client.Client
}

func (r *reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	var item BenchItem
	if err := r.Get(ctx, req.NamespacedName, &item); err != nil {
		// Deleted meanwhile: nothing to write, as our reconcile of an absent object.
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if isWritten(&item) {
		return ctrl.Result{}, nil
	}
	before := item.DeepCopy()
	value, generation := item.Spec.Value, item.Generation
	item.Status.Value = &value
	item.Status.ObservedGeneration = &generation
	return ctrl.Result{}, r.Status().Patch(ctx, &item, client.MergeFrom(before))
}

func main() {
	concurrency := flag.Int("concurrency", 1, "reconcile workers (MaxConcurrentReconciles)")
	qps := flag.Float64("qps", 50, "client-side rate limit, requests per second")
	burst := flag.Int("burst", 100, "client-side rate limit burst")
	metricsAddress := flag.String("metrics-bind-address", "127.0.0.1:8080", "where /metrics is served")
	probeAddress := flag.String("health-probe-bind-address", "127.0.0.1:8081", "where /healthz and /readyz are served")
	flag.Parse()

	ctrl.SetLogger(zap.New(zap.Level(zapcore.WarnLevel)))
	if err := run(*concurrency, float32(*qps), *burst, *metricsAddress, *probeAddress); err != nil {
		fmt.Fprintf(os.Stderr, "controller-runtime bench operator: %v\n", err)
		os.Exit(1)
	}
}

func run(concurrency int, qps float32, burst int, metricsAddress, probeAddress string) error {
	config, err := ctrl.GetConfig()
	if err != nil {
		return err
	}
	config.QPS = qps
	config.Burst = burst

	scheme := runtime.NewScheme()
	scheme.AddKnownTypes(groupVersion, &BenchItem{}, &BenchItemList{})
	metav1.AddToGroupVersion(scheme, groupVersion)

	mgr, err := ctrl.NewManager(config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                metricsserver.Options{BindAddress: metricsAddress},
		HealthProbeBindAddress: probeAddress,
	})
	if err != nil {
		return err
	}

	err = ctrl.NewControllerManagedBy(mgr).
		Named("benchitem").
		For(&BenchItem{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrency}).
		Complete(&reconciler{Client: mgr.GetClient()})
	if err != nil {
		return err
	}

	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return err
	}
	// The same informer the controller watches through; asking for it without
	// blocking only looks it up (the builder above already registered it).
	informerCache := mgr.GetCache()
	if err := mgr.AddReadyzCheck("caches", func(req *http.Request) error {
		informer, err := informerCache.GetInformer(req.Context(), &BenchItem{}, cache.BlockUntilSynced(false))
		if err != nil {
			return err
		}
		if !informer.HasSynced() {
			return errors.New("BenchItem informer not synced")
		}
		return nil
	}); err != nil {
		return err
	}

	return mgr.Start(ctrl.SetupSignalHandler())
}
