"""Texts shared by the parity and word-timestamp tests and benchmarks: numbers, abbreviations,
questions, lists, quotes and one 40-word sentence."""

CORPUS = [
    "Hello world.",
    "The quick brown fox jumps over the lazy dog.",
    "Dr. Smith will see you at 4:30 tomorrow afternoon.",
    "Is this the right way to the train station?",
    "What a wonderful surprise!",
    "We need eggs, milk, flour, butter, and two lemons.",
    "The ticket costs $42.50, or about €39 at today's rate.",
    "She was born on March 3rd, 1987, in a small village.",
    "There were 1,234,567 people counted in the 2020 census.",
    "I can't believe they've already left; we'll have to catch up later.",
    'He said, "Don\'t worry about it," and walked away.',
    "The meeting is at 9 a.m. on Jan. 5th with Mr. Jones and Mrs. Brown.",
    "Although the weather forecast had promised nothing but clear skies and gentle breezes for the entire "
    "weekend, the hikers found themselves caught in a sudden storm that forced them to shelter beneath an "
    "overhanging rock until the thunder finally rolled away.",
    "It's 72 degrees Fahrenheit, roughly 22 degrees Celsius.",
    "Wait... are you serious?",
    "Call me at 555-0199 or e-mail info@example.com.",
    "The recipe needs 3/4 cup of sugar and 2.5 teaspoons of salt.",
    "Oh no! The cat knocked over the vase!",
    "Pi is approximately 3.14159.",
    "Chapter IV: The Return of the King.",
    "Please read the 'terms and conditions' carefully.",
    "Yes.",
    "Whether it rains or shines, the show must go on; that's what the director always says.",
    "Numbers like 7, 13, and 101 are prime.",
]
