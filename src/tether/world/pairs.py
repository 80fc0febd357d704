"""The world's judge and corrector for HA-DPO's pair pipeline (``tether.data.pairs``).

The judge labels each sentence of a description against the scene graph with the rule judge's claim
checker; the corrector replaces each hallucinated sentence by a true sentence in the world's own
description style: about an object the description has not mentioned yet, else a true relation, else
another true sentence about a present object. It never drops a sentence, so chosen and rejected have the
same number of sentences and differ only where the hallucination was: with sentences dropped, chosen
responses were shorter than rejected ones and DPO learned to shorten descriptions instead of removing
hallucinations (figures: docs/results/notes-from-code.md). The wording is drawn from a generator
seeded per image, so an image's correction does not depend on which images came before it (a resumed run
writes what one uninterrupted run would).
"""

import random

from tether.world import texts
from tether.world.judge import WorldRuleJudge
from tether.world.show import load_scenes
from tether.world.vocab import extract_objects


class WorldPairJudge:
    def __init__(self, world_dir, split: str = "train", seed: int = 0):
        self.rules = WorldRuleJudge(world_dir)
        self.scenes = {scene.image_id: scene for scene in load_scenes(world_dir, split)}
        self.seed = seed
        self.name = f"{self.rules.name} ({split} scenes)"

    def __call__(self, image_id: str, sentences: list[str]) -> list[str]:
        return [label for label, _ in self.rules.label_sentences(self.scenes[image_id], sentences)]

    def correct(self, image_id: str, sentences: list[str], labels: list[str]) -> list[str]:
        scene = self.scenes[image_id]
        kept = [s for s, label in zip(sentences, labels) if label != "hallucination"]
        mentioned = {shape for s in kept for shape in extract_objects(s)}
        unmentioned = [i for i, obj in enumerate(scene.objects) if obj.shape not in mentioned]
        rng = random.Random(f"{self.seed}:{image_id}")
        relations = rng.sample(scene.relations, len(scene.relations))
        grid = self.rules.grid_size
        corrected = []
        for sentence, label in zip(sentences, labels):
            if label != "hallucination":
                corrected.append(sentence)
            elif unmentioned:
                corrected.append(texts.object_sentence(rng, scene, unmentioned.pop(0), grid))
            elif relations:
                corrected.append(texts.relation_sentence(rng, scene, relations.pop(), grid))
            else:
                corrected.append(texts.object_sentence(rng, scene, rng.randrange(len(scene.objects)), grid))
        return corrected
