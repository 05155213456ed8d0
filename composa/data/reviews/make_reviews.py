"""Write composa's bundled reviews data set: short product reviews, labelled by sentiment.

    python composa/data/reviews/make_reviews.py

The reviews are generated from templates and word lists written for composa (nothing is
downloaded), with a fixed seed, so the files are the same on every run. Three labels:
``positive``, ``negative`` and ``neutral`` (factual remarks). Some reviews negate
("not bad at all"), contrast ("good screen but a terrible battery") or use words of the
other side, so that a bag-of-words model cannot reach 100%.
"""
import json
import random
from pathlib import Path

SEED = 15
SIZES = {"train": 2400, "dev": 600, "test": 600}

PRODUCTS = [
    "phone", "laptop", "headset", "camera", "blender", "kettle", "backpack", "jacket", "lamp",
    "keyboard", "monitor", "charger", "speaker", "watch", "vacuum", "toaster", "mattress", "router",
    "printer", "drill", "tent", "stroller", "coffee maker", "desk chair", "tablet", "e-reader",
]
PARTS = [
    "battery", "screen", "sound", "build quality", "price", "design", "handle", "zipper", "cable",
    "buttons", "display", "motor", "fabric", "lid", "app", "manual", "packaging", "strap", "fan",
]
GOOD = [
    "great", "excellent", "fantastic", "superb", "lovely", "solid", "reliable", "wonderful",
    "impressive", "sturdy", "comfortable", "brilliant", "perfect", "smooth", "handy", "gorgeous",
]
BAD = [
    "terrible", "awful", "flimsy", "useless", "disappointing", "cheap", "noisy", "broken",
    "horrible", "unreliable", "fragile", "poor", "annoying", "defective", "clunky", "dreadful",
]
LOVE = ["love", "adore", "really like", "enjoy", "would recommend", "am happy with", "am delighted with"]
HATE = ["hate", "regret buying", "returned", "cannot stand", "would not recommend", "am fed up with", "gave up on"]
FACTS = [
    "It arrived on {day}.", "The {product} comes in {colour}.", "I bought the {product} in {month}.",
    "The box contains the {product} and a {part}.", "The {part} is {number} centimetres long.",
    "It weighs about {number} hundred grams.", "I use the {product} in the {room}.",
    "The {product} was delivered by courier.", "My {relative} uses the same {product}.",
    "The {part} can be replaced.", "It has {number} settings.", "The {product} runs on mains power.",
    "I ordered the {colour} {product} on {day}.", "The {part} is made of plastic and metal.",
]
DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "March", "May", "July", "September", "November"]
COLOURS = ["black", "white", "grey", "blue", "red", "green", "silver"]
ROOMS = ["kitchen", "office", "garage", "bedroom", "living room", "car"]
RELATIVES = ["sister", "brother", "mother", "father", "neighbour", "colleague"]
INTENSIFIERS = ["", "", "really ", "very ", "so ", "quite ", "truly "]


def _fill(rng: random.Random, template: str) -> str:
    return template.format(
        product=rng.choice(PRODUCTS), part=rng.choice(PARTS), day=rng.choice(DAYS), month=rng.choice(MONTHS),
        colour=rng.choice(COLOURS), room=rng.choice(ROOMS), relative=rng.choice(RELATIVES),
        number=rng.choice(["two", "three", "four", "five", "six", "ten"]),
    )


def _opinion(rng: random.Random, positive: bool) -> str:
    words, verbs = (GOOD, LOVE) if positive else (BAD, HATE)
    product, part = rng.choice(PRODUCTS), rng.choice(PARTS)
    other = BAD if positive else GOOD
    choices = [
        lambda: f"The {part} is {rng.choice(INTENSIFIERS)}{rng.choice(words)}.",
        lambda: f"I {rng.choice(verbs)} this {product}.",
        lambda: f"What a {rng.choice(words)} {product}!",
        lambda: f"{rng.choice(words).capitalize()} {part} and a {rng.choice(words)} {part}.",
        lambda: f"The {product} is not {rng.choice(other)} at all.",  # negated other side
        lambda: f"The {part} is {rng.choice(other)} but overall the {product} is {rng.choice(words)}.",
        lambda: f"I {rng.choice(verbs)} it, the {part} is {rng.choice(words)}.",
    ]
    return rng.choice(choices)()


def review(rng: random.Random, label: str) -> str:
    """One review of one to three sentences with the sentiment of `label`."""
    sentences = []
    if label == "neutral":
        for _ in range(rng.randint(1, 2)):
            sentences.append(_fill(rng, rng.choice(FACTS)))
    else:
        sentences.append(_opinion(rng, label == "positive"))
        if rng.random() < 0.5:
            sentences.append(_fill(rng, rng.choice(FACTS)))
        if rng.random() < 0.3:
            sentences.append(_opinion(rng, label == "positive"))
        rng.shuffle(sentences)
    return " ".join(sentences)


def main() -> None:
    rng = random.Random(SEED)
    folder = Path(__file__).parent
    labels = ["positive", "negative", "neutral"]
    for split, size in SIZES.items():
        lines = []
        for i in range(size):
            label = labels[i % 3]
            text = review(rng, label)
            if rng.random() < 0.03:  # a little label noise, as in real annotations
                label = rng.choice(labels)
            lines.append(json.dumps({"text": text, "label": label}) + "\n")
        rng.shuffle(lines)
        (folder / f"{split}.jsonl").write_text("".join(lines), encoding="utf8")


if __name__ == "__main__":
    main()
