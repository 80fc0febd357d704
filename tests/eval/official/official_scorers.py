"""The official scoring logic of each benchmark, re-implemented from the published scripts' behaviour.

None of the official scripts installs as a package (and several need NLTK data, spaCy models or an API),
so each function below follows its script step by step, on the same inputs (files or parsed records),
keeping its quirks: the order in which it searches, the epsilons it adds, where it rounds, what it
crashes on (an ``OfficialCrash`` here). Sources: POPE ``evaluate.py`` / LLaVA ``eval_pope.py``; MME
``eval_tool/calculation.py`` with LLaVA's ``convert_answer_to_mme.py``; CHAIR ``utils/chair.py``
(LisaAnne/Hallucination; Maxlinn's and OPERA's copies add recall); MMHal-Bench ``eval_gpt4.py``; HA-DPO
``shr_eval`` (``shr_utils.py``: ``seg_cap``, ``post_process_no_revise``, ``get_metric``); AMBER
``inference.py`` with its ``metrics.txt``. The scorers' own noun/word extraction that needs unavailable
data (NLTK's tagger, WordNet, spaCy) is passed in as a function.
"""


class OfficialCrash(Exception):
    """The official script stops on this input (an assertion, an exception, a division by zero)."""


# ---- POPE -------------------------------------------------------------------------------------------


def pope(answer_texts: list[str], labels: list[str]) -> dict:
    """k-th answer against the k-th label (``zip``: the longer list is cut, silently); "no" when the first
    sentence without commas has No/no/not. The yes-ratio is over every answer."""
    predictions = []
    for text in answer_texts:
        if text.find(".") != -1:
            text = text.split(".")[0]
        words = text.replace(",", "").split(" ")
        predictions.append(0 if ("No" in words or "not" in words or "no" in words) else 1)
    truths = [0 if label == "no" else 1 for label in labels]
    pairs = list(zip(predictions, truths))
    tp = sum(p == 1 and t == 1 for p, t in pairs)
    fp = sum(p == 1 and t == 0 for p, t in pairs)
    tn = sum(p == 0 and t == 0 for p, t in pairs)
    fn = sum(p == 0 and t == 1 for p, t in pairs)
    try:
        precision = float(tp) / float(tp + fp)
        recall = float(tp) / float(tp + fn)
        f1 = 2 * precision * recall / (precision + recall)
    except ZeroDivisionError as e:
        raise OfficialCrash("division by zero") from e
    return {
        "accuracy": (tp + tn) / (tp + tn + fp + fn),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "yes_ratio": predictions.count(1) / len(predictions),
    }


# ---- MME --------------------------------------------------------------------------------------------


def _mme_parse(prediction: str) -> str:
    if prediction in ("yes", "no"):
        return prediction
    head = prediction[:4]
    return "yes" if "yes" in head else "no" if "no" in head else "other"


def mme_task_score(file_text: str) -> float:
    """One ``<subtask>.txt`` of the eval tool: ``readlines()``, consecutive lines paired, 100*(acc+acc+)."""
    lines = _split_on_newline_only(file_text)
    if len(lines) % 2:
        raise OfficialCrash("a pair with one line (assert len(img_items) == 2)")
    right = 0
    pairs_right = 0
    for start in range(0, len(lines), 2):
        both = 0
        for line in lines[start : start + 2]:
            fields = line.split("\t")
            if len(fields) != 4:
                raise OfficialCrash("a line without four tab-separated fields")
            _, _, truth, prediction = fields
            truth = truth.lower()
            if truth not in ("yes", "no"):
                raise OfficialCrash("ground truth neither yes nor no")
            if _mme_parse(prediction.lower()) == truth:
                right += 1
                both += 1
        pairs_right += both == 2
    if not lines:
        raise OfficialCrash("empty file (division by zero)")
    return 100 * right / len(lines) + 100 * pairs_right / (len(lines) // 2)


def _split_on_newline_only(text: str) -> list[str]:
    """``open(path).readlines()``: universal newlines (\\r\\n, \\r -> \\n), split after each \\n only."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    pieces = text.split("\n")
    lines = [piece + "\n" for piece in pieces[:-1]]
    return lines + ([pieces[-1]] if pieces[-1] else [])


def llava_mme_convert(answers: list[dict], answer_key: dict) -> dict[str, str]:
    """LLaVA's converter: per category (the question_id's first part), in the answers' order, one line
    ``file, prompt, truth, answer`` with the truth looked up by (category, image, prompt)."""
    files: dict[str, list[str]] = {}
    for answer in answers:
        category = answer["question_id"].split("/")[0]
        image = answer["question_id"].split("/")[-1]
        key = (category, image, answer["prompt"])
        if key not in answer_key:
            raise OfficialCrash("answer's prompt not in the answer key")
        files.setdefault(category, []).append(
            "\t".join((image, answer["prompt"], answer_key[key], answer["text"])) + "\n"
        )
    return {category: "".join(lines) for category, lines in files.items()}


# ---- CHAIR ------------------------------------------------------------------------------------------


def chair(captions: list[tuple[int, str]], gt_objects: dict, synonym_lines: list[str], words_of) -> dict:
    """CHAIR_s, CHAIR_i and recall. ``words_of(caption)`` is the tokenise + singularise step
    (NLTK ``word_tokenize`` of the lower-cased caption, then pattern's ``singularize`` on each token)."""
    synonyms = [line.strip().split(", ") for line in synonym_lines]
    objects, canonical = [], {}
    for group in synonyms:
        objects.extend(group)
        for word in group:
            canonical[word] = group[0]
    double_words = {}
    for phrase in (
        "motor bike", "motor cycle", "air plane", "traffic light", "street light", "traffic signal",
        "stop light", "fire hydrant", "stop sign", "parking meter", "suit case", "sports ball",
        "baseball bat", "baseball glove", "tennis racket", "wine glass", "hot dog", "cell phone",
        "mobile phone", "teddy bear", "hair drier", "potted plant", "bow tie", "laptop computer",
        "stove top oven", "hot dog", "teddy bear", "home plate", "train track",
    ):  # fmt: skip
        double_words[phrase] = phrase
    for animal in ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
                   "animal", "cub"):  # fmt: skip
        double_words["baby " + animal] = animal
        double_words["adult " + animal] = animal
    for vehicle in ("jet", "train"):
        double_words["passenger " + vehicle] = vehicle
    double_words["bow tie"] = "tie"
    double_words["toilet seat"] = "toilet"
    double_words["wine glas"] = "wine glass"
    object_set = set(objects)

    n_captions = n_hallucinated_captions = n_mentions = n_hallucinated = 0
    n_gt = n_recalled = 0
    for image_id, caption in captions:
        words = words_of(caption)
        merged, i = [], 0
        while i < len(words):
            pair = " ".join(words[i : i + 2])
            if pair in double_words:
                merged.append(double_words[pair])
                i += 2
            else:
                merged.append(words[i])
                i += 1
        if "toilet" in merged and "seat" in merged:
            merged = [w for w in merged if w != "seat"]
        node_words = [canonical[w] for w in merged if w in object_set]
        gt = gt_objects[image_id]
        n_mentions += len(node_words)
        hallucinated, recalled = False, set()
        for node in node_words:
            if node not in gt:
                n_hallucinated += 1
                hallucinated = True
            else:
                recalled.add(node)
        n_captions += 1
        n_hallucinated_captions += hallucinated
        n_gt += len(gt)
        n_recalled += len(recalled)
    try:
        return {
            "chair_s": n_hallucinated_captions / n_captions,
            "chair_i": n_hallucinated / n_mentions,
            "recall": n_recalled / n_gt,
        }
    except ZeroDivisionError as e:
        raise OfficialCrash("division by zero") from e


# ---- MMHal-Bench ------------------------------------------------------------------------------------


def mmhal(replies: list[str]) -> dict:
    """Average rating, hallucination rate (rating < 3), per type by position mod 8 (96 replies)."""
    if len(replies) != 96:
        raise OfficialCrash("the script indexes 96 replies")
    scores = []
    for reply in replies:
        found = [s for s in range(7) if f"rating: {s}" in reply.lower()]
        scores.append(found[0] if len(found) == 1 else 0)
    per_type = [[scores[i] for i in range(96) if i % 8 == t] for t in range(8)]
    return {
        "average_score": sum(scores) / len(scores),
        "hallucination_rate": sum(1 for s in scores if s < 3) / len(scores),
        "per_type": [sum(group) / len(group) for group in per_type],
    }


# ---- SHR (HA-DPO) -----------------------------------------------------------------------------------


def _shr_segments(description: str) -> list[str]:
    kept = []
    for piece in description.split("."):
        sentence = piece.strip()
        if sentence in kept or any(sentence in earlier for earlier in kept):
            continue
        if sentence:
            kept.append(sentence + ".")  # the script's "sentence[-1] != '.' or ..." is always true
    return kept


def _shr_judge(reply: str, description: str) -> list[dict]:
    segments = _shr_segments(description)
    lines = [line for line in reply.split("\n") if len(line) > 0]
    starts = [i for i in range(len(lines)) if "Judgement:" in lines[i]]
    if not starts:
        raise OfficialCrash("no 'Judgement:' line (IndexError)")
    entries = [" ".join(line.split(" ")[1:]).strip() for line in lines[starts[0] + 1 :]]
    entries = [entry for entry in entries if len(entry) > 0]
    classes = [entry.split(":")[0].lower() for entry in entries]
    if not len(segments) == len(entries) == len(classes):
        return [{"model_response": s, "classification": None} for s in segments]
    return [{"model_response": s, "classification": c} for s, c in zip(segments, classes)]


def shr(descriptions: dict[str, str], replies: dict[str, str]) -> dict:
    """HA-DPO's metrics, unrounded (the script prints them rounded to 3 places)."""
    judgement = {image: _shr_judge(replies[image], descriptions[image]) for image in descriptions}
    n_images = len(judgement)
    labels = ("hallucination", "correct", "cannot judge")
    entries = [e for image in judgement for e in judgement[image]]
    judged = [e for e in entries if e["classification"] in labels]
    hallucinated = [e for e in judged if e["classification"] == "hallucination"]

    def words(group):
        return sum(len(e["model_response"].split(" ")) for e in group)

    try:
        return {
            "num_images": n_images,
            "sents_per_image": len(entries) / n_images,
            "hal_sents_per_image": len(hallucinated) / n_images,
            "hal_sents_ratio": len(hallucinated) / len(judged),
            "hal_words_ratio": words(hallucinated) / words(judged),
        }
    except ZeroDivisionError as e:
        raise OfficialCrash("division by zero") from e


# ---- AMBER ------------------------------------------------------------------------------------------

_AMBER_COUNTERS = ("chair", "safe_cover", "hallu_cover", "non_hallu", "qa_correct", "qa_no", "qa_ans_no")
_AMBER_TYPES = {
    "discriminative-attribute-state": "as_",
    "discriminative-attribute-number": "an_",
    "discriminative-attribute-action": "aa_",
    "discriminative-hallucination": "ha_",
}


def amber(responses: list[dict], annotations: list[dict], association: dict, safe_words: list[str],
          nouns_of) -> dict:  # fmt: skip
    """The printed metrics (percentages rounded to 0.1). ``nouns_of(response)`` is the noun extraction
    (NLTK NN* tags + WordNet lemmas in the script)."""
    m = {}
    for name in _AMBER_COUNTERS:  # metrics.txt: every *_num starts at 0.001, every *_score at 0
        m[name + "_num"], m[name + "_score"] = 0.001, 0
    for prefix in ("as_", "an_", "aa_", "ha_", "asso_"):
        for name in ("qa_correct", "qa_no", "qa_ans_no"):
            m[prefix + name + "_num"], m[prefix + name + "_score"] = 0.001, 0
    vocabulary = [w for key in association for w in [key, *association[key]]]
    for response in responses:
        truth_record = annotations[response["id"] - 1]
        if truth_record["type"] == "generative":
            _amber_generative(m, response["response"], truth_record, association, vocabulary, safe_words,
                              nouns_of)  # fmt: skip
        else:
            _amber_discriminative(m, response["response"], truth_record)
    out = {}

    def pct(score, num):
        return round(m[score] / m[num] * 100, 1)

    if any(a["type"] == "generative" for a in map(lambda r: annotations[r["id"] - 1], responses)):
        out["generative/chair"] = pct("chair_score", "chair_num")
        out["generative/cover"] = pct("safe_cover_score", "safe_cover_num")
        out["generative/hal"] = round(100 - m["non_hallu_score"] / m["non_hallu_num"] * 100, 1)
        out["generative/cog"] = pct("hallu_cover_score", "hallu_cover_num")
    for key, prefixes, f1_eps in (
        ("discriminative/", [""], 0.0001),
        ("discriminative/existence/", ["ha_"], 0.001),
        ("discriminative/attribute/", ["as_", "an_", "aa_"], 0.0001),
        ("discriminative/relation/", ["asso_"], 0.0001),
    ):
        def summed(name, prefixes=prefixes):
            return sum(m[p + name] for p in prefixes)

        accuracy = round(summed("qa_correct_score") / summed("qa_correct_num") * 100, 1)
        precision = round(summed("qa_ans_no_score") / summed("qa_ans_no_num") * 100, 1)
        recall = round(summed("qa_no_score") / summed("qa_no_num") * 100, 1)
        f1 = round(2 * (precision / 100) * (recall / 100) / ((precision / 100) + (recall / 100) + f1_eps) * 100, 1)
        out.update({key + "accuracy": accuracy, key + "precision": precision, key + "recall": recall, key + "f1": f1})
    return out


def _amber_generative(m, text, record, association, vocabulary, global_safe, nouns_of):
    nouns = [n for n in nouns_of(text) if n in vocabulary]
    truth, hallu = record["truth"], record["hallu"]
    try:
        safe_words = [w for t in truth for w in association[t]] + list(truth)
        safe_list = [i for i, t in enumerate(truth) for _ in association[t]] + [0] * len(truth)
        ha_words = [w for h in hallu for w in association[h]] + list(hallu)
        ha_list = [i for i, h in enumerate(hallu) for _ in association[h]] + [0] * len(hallu)
    except KeyError as e:
        raise OfficialCrash("an object without an association entry") from e
    n_safe_assoc, n_ha_assoc = len(safe_list) - len(truth), len(ha_list) - len(hallu)
    unmatched = [0] * len(nouns)
    for k, noun in enumerate(nouns):
        if noun in global_safe:
            continue
        if noun in safe_words:
            j = safe_words.index(noun)  # the first listing wins
            safe_list[safe_list[j] + n_safe_assoc if j < n_safe_assoc else j] = 1
            continue
        if noun in ha_words:
            j = ha_words.index(noun)
            ha_list[ha_list[j] + n_ha_assoc if j < n_ha_assoc else j] = 1
        # (the spaCy similarity > 0.8 search would follow here)
        unmatched[k] = 1
    m["chair_score"] += sum(unmatched)
    m["chair_num"] += len(unmatched)
    m["safe_cover_score"] += sum(safe_list[-len(truth):])
    m["safe_cover_num"] += len(safe_list[-len(truth):])
    m["hallu_cover_score"] += sum(ha_list[-len(hallu):])
    m["hallu_cover_num"] += len(ha_list[-len(hallu):])
    m["non_hallu_score"] += sum(unmatched) == 0
    m["non_hallu_num"] += 1


def _amber_discriminative(m, response, record):
    prefix = _AMBER_TYPES.get(record["type"], "asso_")
    right_answer = "Yes" if record["truth"] == "yes" else "No"
    for p in ("", prefix):
        m[p + "qa_correct_num"] += 1
        if record["truth"] != "yes":
            m[p + "qa_no_num"] += 1
        if response == right_answer:
            m[p + "qa_correct_score"] += 1
            if record["truth"] != "yes":
                m[p + "qa_no_score"] += 1
        if response == "No":
            m[p + "qa_ans_no_num"] += 1
            if record["truth"] == "no":
                m[p + "qa_ans_no_score"] += 1


# ---- Object HalBench ---------------------------------------------------------------------------------


def objhalbench(answers: list[tuple[int, str]], gt_objects: dict, synonym_lines: list[str], words_of,
                extracted: dict | None = None, noun_runs=None) -> dict:  # fmt: skip
    """RLHF-V ``eval_gpt_obj_halbench.py`` ``compute_chair`` plus the summary's percentages (as fractions).

    ``words_of(text)`` is ``nltk.word_tokenize(text.lower())`` lemmatised by WordNet (rule path; spaCy's
    tokens and lemmas on the judge path);
    ``extracted`` maps an answer's position to the judge's object list (``--use_gpt``; None: rule path),
    ``noun_runs(lemmas)`` is the spaCy tagger's noun runs of a listed phrase."""
    synonyms = [line.strip().split(", ") for line in synonym_lines]
    objects, canonical = [], {}
    for group in synonyms:
        group = [s.strip() for s in group]
        objects.extend(group)
        for word in group:
            canonical[word] = group[0]
    double_words = {w: w for w in canonical if len(w.strip().split(" ")) >= 2}
    double_words.update({"home plate": "home plate", "train track": "train track"})
    for animal in ("bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe",
                   "animal", "cub"):  # fmt: skip
        double_words["baby " + animal] = animal
        double_words["adult " + animal] = animal
    for vehicle in ("jet", "train"):
        double_words["passenger " + vehicle] = vehicle
    double_words["bow tie"] = "tie"
    double_words["toilet seat"] = "toilet"
    double_words["wine glas"] = "wine glass"
    object_set = set(objects)

    def merge(words, keep_others):
        out, i = [], 0
        while i < len(words):
            pair = " ".join(words[i : i + 2])
            if pair in double_words:
                out.append(double_words[pair])
                i += 2
            else:
                if keep_others:
                    out.append(words[i])
                i += 1
        return out

    n_caps = n_coco_caps = n_hall_caps = n_hall_words = n_coco_words = n_gt = n_covered = n_words = 0
    for position, (image_id, answer) in enumerate(answers):
        n_words += len(answer.strip().split(" "))
        if extracted is None:
            words = merge(words_of(answer), keep_others=True)
        else:
            listed = [] if len(answer.strip().split()) <= 3 else extracted[position]
            refined = []
            for text in listed:
                lemmas = words_of(f"a {text}")
                doubles = merge(lemmas, keep_others=False)
                refined += doubles if doubles else noun_runs(lemmas)
            words = []
            for obj in refined:
                if obj not in words:
                    words.append(obj)
        if "toilet" in words and "seat" in words:
            words = [w for w in words if w != "seat"]
        nodes = [canonical[w] for w in words if w in object_set]
        gt = gt_objects[image_id]
        n_gt += len(gt)
        n_coco_words += len(nodes)
        hallucinated, covered = False, set()
        for node in nodes:
            if node not in gt:
                n_hall_words += 1
                hallucinated = True
            else:
                covered.add(node)
        n_covered += len(covered)
        n_caps += 1
        n_hall_caps += hallucinated
        n_coco_caps += len(nodes) > 0
    try:
        chair_i, recall = n_hall_words / n_coco_words, n_covered / n_gt
        return {
            "response_hallucination": n_hall_caps / n_coco_caps,
            "object_hallucination": chair_i,
            "chair_s": n_hall_caps / n_caps,
            "object_recall": recall,
            "object_f1": 2 * recall * (1 - chair_i) / (recall + 1 - chair_i),
            "avg_words": n_words / n_caps,
        }
    except ZeroDivisionError as e:
        raise OfficialCrash("division by zero") from e
