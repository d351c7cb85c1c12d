"""pycocotools' box AP algorithm with per-image matching and accumulation vectorized in numpy."""

import copy
import datetime
import itertools
from operator import itemgetter

import numpy as np
from pycocotools.cocoeval import COCOeval

__all__ = ["BoxCOCOeval", "box_iou_xywh"]


def box_iou_xywh(dt, gt, crowd):
    """
    pycocotools' box IoU (``maskApi.c: bbIou``) of row i of ``dt`` with row i of ``gt`` ((N, 4)
    float64 x, y, w, h), its operations in its order; for a ``crowd`` ground truth the union is
    the detection's area.
    """
    da = dt[:, 2] * dt[:, 3]
    ga = gt[:, 2] * gt[:, 3]
    w = np.minimum(dt[:, 2] + dt[:, 0], gt[:, 2] + gt[:, 0]) - np.maximum(dt[:, 0], gt[:, 0])
    h = np.minimum(dt[:, 3] + dt[:, 1], gt[:, 3] + gt[:, 1]) - np.maximum(dt[:, 1], gt[:, 1])
    inter = w * h
    union = np.where(crowd, da, da + ga - inter)
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / union
    return np.where((w > 0) & (h > 0), iou, 0.0)


def _columns(anns):
    """The fields the evaluation reads, as arrays in the order of ``anns``."""
    n = len(anns)
    return {
        "image_id": np.fromiter(map(itemgetter("image_id"), anns), np.int64, n),
        "category_id": np.fromiter(map(itemgetter("category_id"), anns), np.int64, n),
        "bbox": np.array(list(map(itemgetter("bbox"), anns)), np.float64).reshape(n, 4),
        "area": np.fromiter(map(itemgetter("area"), anns), np.float64, n),
    }


def _index(ids, known, what):
    """Positions of ``ids`` in the sorted array ``known``; an unknown id is an error."""
    pos = np.searchsorted(known, ids)
    bad = (pos >= len(known)) | (known[np.minimum(pos, len(known) - 1)] != ids)
    if bad.any():
        raise ValueError(f"{what} {sorted(set(ids[bad].tolist()))[:10]} not in the ground truth")
    return pos


class BoxCOCOeval(COCOeval):
    """
    pycocotools' :class:`COCOeval` for ``iouType="bbox"`` with ``evaluate()`` and
    ``accumulate()`` computed on flat arrays instead of per-image Python dicts.

    The results (``eval["precision"]``, ``["recall"]``, ``["scores"]``, and so ``stats``) are
    those of pycocotools, bit for bit: the same IoU operations, the same greedy matching
    (detections by score, stable; ignored ground truth last; the best IoU, the last on ties;
    crowd boxes matched any number of times; a ground truth with id 0 counted unmatched, as
    pycocotools does), the same stable sorts and float operations in accumulation. Matching
    runs in rounds: each round commits, in every (image, category, area range, IoU threshold)
    group, the highest-scoring detection that still has an available candidate.

    Detections come from ``cocoDt`` (pycocotools ``loadRes``) or, skipping the per-detection
    dicts, from :meth:`from_arrays`. Other IoU types, ``useCats=0`` and ``accumulate(p)`` with
    other parameters use pycocotools. ``evalImgs`` (pycocotools' per-image dicts) is not filled.
    """

    @classmethod
    def from_arrays(cls, cocoGt, image_id, category_id, bbox, score):
        """
        An ``iouType="bbox"`` evaluation of N detections given as arrays in the role, and the
        order, of a ``loadRes`` result list: ``image_id``, ``category_id`` (ids as in the
        JSON), ``bbox`` (N, 4) (x, y, w, h) and ``score``.
        """
        ev = cls(cocoGt, None, "bbox")
        bbox = np.asarray(bbox, dtype=np.float64).reshape(-1, 4)
        ev._dt_columns = {
            "image_id": np.asarray(image_id, dtype=np.int64),
            "category_id": np.asarray(category_id, dtype=np.int64),
            "bbox": bbox,
            "area": bbox[:, 2] * bbox[:, 3],  # what loadRes stores as "area"
            "score": np.asarray(score, dtype=np.float64),
        }
        return ev

    def _vectorized(self):
        return self.params.iouType == "bbox" and self.params.useCats == 1

    def evaluate(self):
        if not self._vectorized():
            if getattr(self, "_dt_columns", None) is not None:
                raise ValueError("BoxCOCOeval.from_arrays evaluates boxes with useCats=1 only")
            return super().evaluate()
        p = self.params
        p.imgIds = list(np.unique(p.imgIds))
        p.catIds = list(np.unique(p.catIds))
        p.maxDets = sorted(p.maxDets)
        self._paramsEval = copy.deepcopy(p)
        gts = self.cocoGt.loadAnns(self.cocoGt.getAnnIds(imgIds=p.imgIds, catIds=p.catIds))
        gt = _columns(gts)
        gt["iscrowd"] = np.fromiter((bool(g.get("iscrowd", 0)) for g in gts), bool, len(gts))
        gt["id_nonzero"] = np.fromiter((g["id"] != 0 for g in gts), bool, len(gts))
        dt = getattr(self, "_dt_columns", None)
        if dt is None:
            dts = self.cocoDt.loadAnns(self.cocoDt.getAnnIds(imgIds=p.imgIds, catIds=p.catIds))
            dt = _columns(dts)
            dt["score"] = np.fromiter(map(itemgetter("score"), dts), np.float64, len(dts))
        else:  # what loadRes + getAnnIds(imgIds, catIds) would keep
            known = np.asarray(sorted(self.cocoGt.getImgIds()), dtype=np.int64)
            _index(dt["image_id"], known, "detections on image ids")
            keep = np.isin(dt["image_id"], np.asarray(p.imgIds, dtype=np.int64))
            keep &= np.isin(dt["category_id"], np.asarray(p.catIds, dtype=np.int64))
            dt = {k: v[keep] for k, v in dt.items()}
        self._flat = self._match(gt, dt)

    def _match(self, gt, dt):
        p = self.params
        K, A, T = len(p.catIds), len(p.areaRng), len(p.iouThrs)
        area_rng = np.asarray(p.areaRng, dtype=np.float64)
        thresholds = np.minimum(np.asarray(p.iouThrs, dtype=np.float64), 1 - 1e-10)
        img_ids = np.asarray(p.imgIds, dtype=np.int64)
        cat_ids = np.asarray(p.catIds, dtype=np.int64)

        n_gt = len(gt["area"])
        g_cat = _index(gt["category_id"], cat_ids, "category ids")
        g_pair = _index(gt["image_id"], img_ids, "image ids") * K + g_cat
        g_box, g_crowd = gt["bbox"], gt["iscrowd"]
        # (G, A): pycocotools' _ignore: iscrowd or area outside the range
        g_ign = g_crowd[:, None] | (gt["area"][:, None] < area_rng[:, 0])
        g_ign |= gt["area"][:, None] > area_rng[:, 1]

        d_pair = _index(dt["image_id"], img_ids, "image ids") * K
        d_pair += _index(dt["category_id"], cat_ids, "category ids")
        # per (image, category): by score, stable (mergesort), the first maxDets[-1]
        order = np.lexsort((np.arange(len(d_pair)), -dt["score"], d_pair))
        d_pair = d_pair[order]
        rank = np.arange(len(d_pair)) - np.searchsorted(d_pair, d_pair, side="left")
        keep = order[rank < p.maxDets[-1]]
        d_pair, rank = d_pair[rank < p.maxDets[-1]], rank[rank < p.maxDets[-1]]
        d_box, d_area, d_score = dt["bbox"][keep], dt["area"][keep], dt["score"][keep]
        d_out = (d_area[:, None] < area_rng[:, 0]) | (d_area[:, None] > area_rng[:, 1])  # (D, A)

        # a ground truth's position in pycocotools' per-area order (stable: not ignored first)
        g_order = np.lexsort((np.arange(n_gt), g_pair))
        gp_sorted = g_pair[g_order]
        g_pos = np.empty((n_gt, A), np.int64)
        for a in range(A):
            o = np.lexsort((np.arange(n_gt), g_ign[:, a], g_pair))
            g_pos[o, a] = np.arange(n_gt) - np.searchsorted(gp_sorted, g_pair[o], "left")

        # every (detection, ground truth) of one image and category, kept where IoU can match
        lo = np.searchsorted(gp_sorted, d_pair, "left")
        cnt = np.searchsorted(gp_sorted, d_pair, "right") - lo
        e_det = np.repeat(np.arange(len(d_pair)), cnt)
        offs = np.arange(len(e_det)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        e_gt = g_order[np.repeat(lo, cnt) + offs]
        iou = box_iou_xywh(d_box[e_det], g_box[e_gt], g_crowd[e_gt])
        cand = iou >= thresholds.min()
        e_det, e_gt, iou = e_det[cand], e_gt[cand], iou[cand]

        # one edge per (area range, threshold) that the IoU reaches
        at, e = np.nonzero(iou[None, :] >= np.tile(thresholds, A)[:, None])
        det, g, a_of, t_of = e_det[e], e_gt[e], at // T, at % T
        group = d_pair[det] * (A * T) + at
        srt = np.lexsort((-g_pos[g, a_of], -iou[e], g_ign[g, a_of], rank[det], group))
        group, det, g, a_of, t_of = group[srt], det[srt], g[srt], a_of[srt], t_of[srt]

        dtm = np.zeros((T, A, len(d_pair)), bool)
        dt_ign = np.zeros((T, A, len(d_pair)), bool)
        while group.size:
            first = np.ones(group.size, bool)
            first[1:] = group[1:] != group[:-1]
            t1, a1, d1, g1 = t_of[first], a_of[first], det[first], g[first]
            dtm[t1, a1, d1] = gt["id_nonzero"][g1]  # pycocotools tests the gt id against 0
            dt_ign[t1, a1, d1] = g_ign[g1, a1]
            head = np.maximum.accumulate(np.where(first, np.arange(group.size), 0))
            h_det, h_gt = det[head], g[head]
            live = (det != h_det) & ((g != h_gt) | g_crowd[h_gt])
            group, det, g, a_of, t_of = group[live], det[live], g[live], a_of[live], t_of[live]
        dt_ign |= ~dtm & d_out.T[None, :, :]
        return {
            "d_cat": d_pair % K,
            "d_rank": rank,
            "d_score": d_score,
            "dtm": dtm,  # (T, A, D)
            "dt_ign": dt_ign,
            "npig": np.array([np.bincount(g_cat[~g_ign[:, a]], minlength=K) for a in range(A)]),
        }

    def accumulate(self, p=None):
        if not self._vectorized() or not hasattr(self, "_flat") or p not in (None, self.params):
            return super().accumulate(p)
        p = self.params
        f = self._flat
        T, R, K = len(p.iouThrs), len(p.recThrs), len(p.catIds)
        A, M = len(p.areaRng), len(p.maxDets)
        precision = -np.ones((T, R, K, A, M))
        recall = -np.ones((T, K, A, M))
        scores = -np.ones((T, R, K, A, M))
        rec_thrs = np.asarray(p.recThrs)
        # per category: detections in image order, then by score (stable), as pycocotools sorts
        by_cat = [np.nonzero(f["d_cat"] == k)[0] for k in range(K)]
        by_cat = [idx[np.argsort(-f["d_score"][idx], kind="mergesort")] for idx in by_cat]
        for k, a, m in itertools.product(range(K), range(A), range(M)):
            npig = int(f["npig"][a, k])
            if npig == 0:
                continue
            sel = by_cat[k][f["d_rank"][by_cat[k]] < p.maxDets[m]]
            dtm, dt_ign = f["dtm"][:, a, sel], f["dt_ign"][:, a, sel]
            tp_sum = np.cumsum(dtm & ~dt_ign, axis=1).astype(dtype=float)
            fp_sum = np.cumsum(~dtm & ~dt_ign, axis=1).astype(dtype=float)
            rc = tp_sum / npig
            pr = tp_sum / (fp_sum + tp_sum + np.spacing(1))
            recall[:, k, a, m] = rc[:, -1] if len(sel) else 0
            pr = np.maximum.accumulate(pr[:, ::-1], axis=1)[:, ::-1]
            # a recall threshold beyond the last detection reads the appended 0
            inds = np.array([np.searchsorted(r, rec_thrs, side="left") for r in rc], np.int64)
            pr = np.concatenate([pr, np.zeros((T, 1))], axis=1)
            precision[:, :, k, a, m] = np.take_along_axis(pr, inds, axis=1)
            scores[:, :, k, a, m] = np.append(f["d_score"][sel], 0.0)[inds]
        self.eval = {
            "params": p,
            "counts": [T, R, K, A, M],
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "precision": precision,
            "recall": recall,
            "scores": scores,
        }
